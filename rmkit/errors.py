"""The errors a user can fix, which the ``rmkit`` command prints as one line.

Everything rmkit raises for bad input derives from :class:`UserError`; the CLI boundary
(:func:`rmkit.cli.main`) prints it as ``rmkit: error: ...`` and exits 2, with the traceback
only under ``--debug`` (or ``RMKIT_DEBUG=1``). Any other exception is a bug and keeps its
traceback. Third-party errors are converted where rmkit knows what the user meant (a
model path that is not there, a package that is not installed); :func:`user_message` also
reads a few built-in ones as user errors (a missing file, out of memory).

Each class also derives from the built-in error it refines, so ``except ValueError`` and
``except FileNotFoundError`` keep catching them.
"""

from __future__ import annotations

from collections.abc import Callable


class UserError(Exception):
    """Bad input: the message says what, where (file:line:field or the recipe key) and what to do."""


class ConfigError(UserError, ValueError):
    """A recipe key, override or command-line option that is unknown, mistyped or out of range."""


class RecordError(UserError, ValueError):
    """A bad input record, located by file, line and field."""

    def __init__(self, reason: str, *, source: str = "", field: str = "", kind: str = "invalid"):
        self.reason, self.source, self.field, self.kind = reason, source, field, kind
        where = ", ".join(part for part in (source, f"field {field!r}" if field else "") if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class DataError(UserError, ValueError):
    """Input that parses but leaves nothing to work on: empty, every record skipped, nothing fits."""


class MissingPath(UserError, FileNotFoundError):
    """A file, folder or model that is not where the user said."""


class MissingDependency(UserError, ImportError):
    """An optional package that this command needs and that is not installed."""


def not_utf8(data: bytes, err: UnicodeDecodeError) -> tuple[int, str]:
    """Where ``data`` stops being UTF-8, as ``(1-based line, the reason to print)``."""
    line = data.count(b"\n", 0, err.start) + 1
    column = err.start - data.rfind(b"\n", 0, err.start)
    return line, f"not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}): save the file as UTF-8"


def decode_utf8(data: bytes, error: Callable[[int, str], UserError]) -> str:
    """``data`` as text; where it is not UTF-8, ``error(line, reason)`` (:func:`not_utf8`) is raised."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(*not_utf8(data, err)) from None


def user_message(err: BaseException, hints: dict[str, str] | None = None) -> str | None:
    """The one line to print for ``err`` if it is the user's to fix, else None (a bug: show the traceback).

    ``hints`` adds advice by kind: ``"record"`` (how to skip bad records) and ``"memory"``
    (what to lower), which depend on the command.
    """
    hints = hints or {}
    if isinstance(err, RecordError) and hints.get("record"):
        return f"{err} ({hints['record']})"
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch's, without importing torch
        first = str(err).strip().splitlines()[0] if str(err).strip() else "MemoryError"
        return f"out of memory ({first[:200]})" + (f": lower {hints['memory']}" if hints.get("memory") else "")
    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        return f"{err.filename}: {err.strerror.lower()}" if err.filename and err.strerror else str(err)
    if isinstance(err, ModuleNotFoundError) and err.name and not err.name.startswith("rmkit"):
        package = err.name.split(".")[0]
        return f"this needs the Python package {package!r}, which is not installed (pip install {package})"
    return None
