"""One rmkit process at a time per output folder.

Two runs writing one folder would interleave their lines and overwrite each other's files.
A verb that writes a folder holds an exclusive lock on ``FOLDER/.rmkit.lock`` while it runs
(``fcntl.flock``: the kernel lets go of it when the process ends, ``kill -9`` included), and
a second one stops at once with one line naming the first.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rmkit.errors import ConfigError

LOCK_NAME = ".rmkit.lock"


@contextmanager
def folder_lock(folder: str | Path, command: str, create: bool = True) -> Iterator[None]:
    """Hold ``folder``'s lock while the body runs, or raise a one-line :class:`ConfigError`.

    ``create``: make the folder first (a new run); else a folder that is not there is not
    locked (the verb reports that it is missing).
    """
    folder = Path(folder)
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        yield
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(
                f"{folder} is in use by {holder}: wait until it ends, or give this command another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"rmkit {command} (pid {os.getpid()})\n".encode(), 0)
        yield
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # and with it the lock
