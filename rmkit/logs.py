"""Where output goes: rmkit's own lines and progress bars on the screen, the engines' logs in a file.

vLLM, transformers, accelerate and torch write a lot (vLLM alone some 280 lines in the
demo). The CLI calls :func:`setup` before a verb runs: every Python log record and
warning then goes to ``rmkit.log`` in the folder the verb works in (:func:`log_to`: a
training ``output_dir``, a sampling run folder; other verbs ``$RMKIT_CACHE/logs/VERB.log``),
and to the screen only with ``-v``. vLLM's engine runs in child processes, which print
C++ warnings and progress bars straight to the terminal: :func:`engine_output` points
their output (and this process's) at the log file while an engine starts, and
:func:`vllm_args` sends vLLM's log records, its engine processes' included, to the same file. Without
:func:`setup` (rmkit used as a library) nothing changes.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LOG_NAME = "rmkit.log"
FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


@dataclass
class _Setup:
    verbose: bool
    default: Path  # the log file when the verb names no folder
    buffer: logging.handlers.MemoryHandler  # records from before the folder is known
    screen: logging.Handler | None
    root_level: int
    file: logging.FileHandler | None = None
    undo: list = field(default_factory=list)  # what to call to restore the libraries' own settings


_setup: _Setup | None = None
_lingering: logging.Handler | None = None  # the last log file, kept for what is said at exit


def setup(verb: str, verbose: bool) -> None:
    """Route log records and warnings to the log file (and, with ``verbose``, to stderr) until :func:`close`."""
    global _setup, _lingering
    close()
    root = logging.getLogger()
    if _lingering is not None:
        root.removeHandler(_lingering)
        _lingering.close()
        _lingering = None
    buffer = logging.handlers.MemoryHandler(capacity=1 << 20, flushLevel=logging.CRITICAL + 1)
    root.addHandler(buffer)
    screen = None
    if verbose:
        screen = logging.StreamHandler(sys.stderr)
        screen.setFormatter(logging.Formatter(FORMAT))
        screen.addFilter(lambda record: not record.name.startswith("rmkit"))  # printed as they are
        root.addHandler(screen)
    _setup = _Setup(verbose, _cache_logs() / f"{verb}.log", buffer, screen, root.level)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    _setup.undo.append(lambda: logging.captureWarnings(False))
    _quiet_transformers(verbose)


def _cache_logs() -> Path:
    return Path(os.environ.get("RMKIT_CACHE", "~/.cache/rmkit")).expanduser() / "logs"


def _quiet_transformers(verbose: bool) -> None:
    """transformers logs to its own stderr handler and draws loading bars: send its records to ours."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    _setup.undo += [hf_logging.enable_default_handler, hf_logging.disable_propagation]
    if not verbose and hf_logging.is_progress_bar_enabled():
        hf_logging.disable_progress_bar()
        _setup.undo.append(hf_logging.enable_progress_bar)


def log_to(folder: str | Path) -> Path | None:
    """Write the log to ``folder/rmkit.log`` from now on (with what was logged so far); the path, or
    None without :func:`setup`."""
    if _setup is None:
        return None
    return _attach(Path(folder) / LOG_NAME)


def log_file() -> Path | None:
    """The log file (the verb's default when it named no folder), or None without :func:`setup`."""
    if _setup is None:
        return None
    return Path(_setup.file.baseFilename) if _setup.file else _attach(_setup.default)


def _attach(path: Path) -> Path:
    root = logging.getLogger()
    if _setup.file is not None:
        if Path(_setup.file.baseFilename) == path.resolve():
            return path
        root.removeHandler(_setup.file)
        _setup.file.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    _setup.file = logging.FileHandler(path, mode="a", encoding="utf-8")
    _setup.file.setFormatter(logging.Formatter(FORMAT))
    if _setup.buffer in root.handlers:  # the first file: it gets what came before
        _setup.buffer.setTarget(_setup.file)
        _setup.buffer.flush()
        root.removeHandler(_setup.buffer)
    root.addHandler(_setup.file)
    return path


def close() -> None:
    """Flush the log and give the libraries back their own logging settings.

    The log file stays attached (until the next :func:`setup`) for what engines say while
    they shut down at exit, after the verb has returned: vLLM's do.
    """
    global _setup, _lingering
    if _setup is None:
        return
    if _setup.buffer.buffer:
        log_file()
    root = logging.getLogger()
    for handler in (_setup.buffer, _setup.screen):
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
    _lingering = _setup.file
    root.setLevel(_setup.root_level)
    for undo in reversed(_setup.undo):
        undo()
    _setup = None


def quiet() -> bool:
    """Whether engine output stays off the screen: under :func:`setup` without ``-v``."""
    return _setup is not None and not _setup.verbose


def quiet_datasets() -> None:
    """Under :func:`setup` without ``-v``, no bars from ``datasets`` (a bar for every map and filter:
    TRL's SFT runs three) until :func:`close`. Called where datasets is imported anyway: importing
    it takes about a second."""
    if not quiet():
        return
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    if not are_progress_bars_disabled():
        disable_progress_bars()
        _setup.undo.append(enable_progress_bars)


def note(text: str, warning: bool = False) -> None:
    """One line of rmkit's own on stderr (from the main process only), and in the log."""
    if os.environ.get("RANK", "0") == "0":
        print(f"rmkit: {'warning: ' if warning else ''}{text}", file=sys.stderr)
    logging.getLogger("rmkit").log(logging.WARNING if warning else logging.INFO, text)


@contextmanager
def engine_output():
    """Send everything written to stdout and stderr while the body runs to the log file: by this
    process and by the processes it starts (they keep it), whatever writes it (C++ warnings,
    ``print``, progress bars). With ``-v``, or without :func:`setup`, nothing changes."""
    if _setup is None or _setup.verbose:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file(), "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def vllm_args() -> dict:
    """Arguments for ``vllm.LLM``: under :func:`setup`, a logging config that sends the records of
    the ``vllm`` loggers to the log file instead of stdout (with ``-v``, to the screen too, as the
    other engines' records). vLLM hands it to its engine processes, which apply it when they start
    (``configure_logging``)."""
    if _setup is None:
        return {}
    from vllm.config.logging import LoggingConfig

    handlers = {"rmkit": {"class": "logging.FileHandler", "filename": str(log_file()), "mode": "a", "formatter": "rmkit"}}
    if _setup.verbose:
        handlers["screen"] = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "rmkit"}
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"rmkit": {"format": FORMAT}},
        "handlers": handlers,
        "loggers": {"vllm": {"handlers": list(handlers), "level": "INFO", "propagate": False}},
    }
    handle, path = tempfile.mkstemp(prefix="rmkit-vllm-logging-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(config, file)
    _setup.undo.append(lambda: os.unlink(path))
    return {"logging_config": LoggingConfig(pylogging_config_file=path)}
