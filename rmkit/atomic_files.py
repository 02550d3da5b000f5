"""Output files written whole: to a temporary name in the same folder, then renamed, so a reader
never sees half a file and a crash leaves the old file or the new one. The file gets the mode a
plain ``open(path, "w")`` would give it (0666 less the umask)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    # Not tempfile.mkstemp: its file is 0600 whatever the umask, and the rename keeps that.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_json(path: str | Path, data) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
