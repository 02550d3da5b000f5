"""Raw records from files, folders, globs or the hub, each with a "FILE:LINE" source.

Line sources are 1-based ("pairs.jsonl:12"); records without lines (a JSON list, a
parquet row, a hub row) are located by 0-based index ("pairs.parquet:#3"). A folder is
read for one split, told by its file and folder names as the datasets library tells them
(:func:`split_files`), so a clone of a dataset repository never mixes train and test.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import random
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from rmkit.conversation import RecordError
from rmkit.errors import ConfigError, DataError, MissingPath, decode_utf8, not_utf8

# Text formats may be gzipped; ".jsonl.gz" is how HH-RLHF ships.
TEXT_KINDS = ("jsonl", "json", "txt")
SUFFIXES = tuple(f".{kind}{gz}" for kind in TEXT_KINDS for gz in ("", ".gz")) + (".parquet",)

# File stems that name a split rather than a dataset (incl. hub shards "train-00000-of-00003").
SPLIT_STEM = re.compile(r"(train|test|validation|valid|val|dev|eval)(-\d+-of-\d+)?")

# The datasets library's split names for a folder's files (datasets/data_files.py): hub
# shards "data/{split}-00000-of-00003.*" name any split; else a keyword below, as a word
# (between "-._ 0-9" or the ends) of a folder name, else of a file name.
SPLIT_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_WORD_END = "[-._ 0-9]"
SHARD_FILE = re.compile(r"data/(\w+(?:\.\w+)*)-\d{5}-of-\d{5}[^/]*\.[^/]*")
IN_FOLDER_NAME = {s: re.compile(rf"(?:^|{_WORD_END})(?:{'|'.join(k)})(?:{_WORD_END}|$)") for s, k in SPLIT_KEYWORDS.items()}
IN_FILE_NAME = {s: re.compile(rf"(?:^|{_WORD_END})(?:{'|'.join(k)}){_WORD_END}") for s, k in SPLIT_KEYWORDS.items()}


def read_records(
    path: str, split: str | None = "train", *, errors: str = "raise", files_read: list[str] | None = None
) -> Iterator[tuple[dict | RecordError, str]]:
    """Yield ``(record, source)`` from a local file, folder or glob, else a hub dataset.

    A folder gives the files of ``split`` (None: every file); a file or glob, the files it
    names. A line that is not a JSON object raises :class:`RecordError`, or with
    ``errors="yield"`` comes as ``(RecordError, source)`` and reading goes on. Each file
    (or hub dataset) is appended to ``files_read`` as it is opened.
    """
    if errors not in ("raise", "yield"):
        raise ValueError(f"errors must be 'raise' or 'yield', got {errors!r}")
    files = _local_files(path, split)
    if files is None:
        opened = [(f"{path} (hub, split {split or 'train'})", _hub_records(path, split or "train"))]
    else:
        opened = ((str(file), _file_records(file)) for file in files)  # generators: a file opens when read
    for name, records in opened:
        if files_read is not None:
            files_read.append(name)
        for record, source in records:
            if errors == "raise" and isinstance(record, RecordError):
                raise record
            yield record, source


def split_files(relative: list[str]) -> dict[str, list[str]] | None:
    """The files of each split among a folder's files ("/"-separated paths relative to it),
    as the datasets library splits them; None when no name names a split (one unnamed split).

    As there, files that name no split are in none when others do; a file may be in two.
    """
    shards: dict[str, list[str]] = {}
    for name in relative:
        if match := SHARD_FILE.fullmatch(name):
            shards.setdefault(match[1], []).append(name)
    if shards:
        return shards
    levels = ((lambda name: name.split("/")[:-1], IN_FOLDER_NAME), (lambda name: [name.rpartition("/")[2]], IN_FILE_NAME))
    for parts, patterns in levels:
        found = {
            split: [name for name in relative if any(map(pattern.search, parts(name)))] for split, pattern in patterns.items()
        }
        if any(found.values()):
            return {split: names for split, names in found.items() if names}
    return None


def file_stem(path: str) -> str:
    """The file name without its data suffix: "test.jsonl.gz" -> "test"."""
    name = Path(path).name
    suffix = next((s for s in SUFFIXES if name.endswith(s)), "")
    return name[: len(name) - len(suffix)]


def subset_of(source_file: str) -> str:
    """The dataset a file belongs to: its stem, or its folder when the stem is a split name."""
    stem = file_stem(source_file)
    parent = Path(source_file).parent.name
    return parent if SPLIT_STEM.fullmatch(stem) and parent else stem


def split_heldout(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Split ``items`` into ``(train, heldout)``; both keep the input order."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"held-out fraction must be in [0, 1), got {fraction}")
    n_heldout = round(len(items) * fraction)
    if fraction > 0 and len(items) >= 2:
        n_heldout = min(max(n_heldout, 1), len(items) - 1)  # both sides non-empty
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    heldout = set(order[:n_heldout])
    train = [item for i, item in enumerate(items) if i not in heldout]
    return train, [item for i, item in enumerate(items) if i in heldout]


def _kind(path: Path | str) -> str | None:
    name = str(path)
    if name.endswith(".parquet"):
        return "parquet"
    base = name.removesuffix(".gz")
    return next((kind for kind in TEXT_KINDS if base.endswith(f".{kind}")), None)


def _local_files(path: str, split: str | None) -> list[Path] | None:
    """The supported files ``path`` names (a folder: those of ``split``), or None when it is not local (a hub id)."""
    p = Path(path)
    if p.is_dir():
        files = [f for f in sorted(p.rglob("*")) if f.is_file() and _kind(f) and not _hidden(f.relative_to(p))]
        if not files:
            raise MissingPath(f"no data files ({', '.join(SUFFIXES)}) under {path}")
        return files if split is None else _files_of_split(p, files, split)
    if p.is_file():
        if not _kind(p):
            raise DataError(f"unsupported file type: {path} (expected one of {', '.join(SUFFIXES)})")
        return [p]
    if any(c in path for c in "*?["):
        files = [Path(f) for f in sorted(glob.glob(path, recursive=True)) if Path(f).is_file() and _kind(f)]
        if not files:
            raise MissingPath(f"no data files match {path}")
        return files
    if _kind(p):  # looks like a file name: a typo, not a hub id
        raise MissingPath(f"no such file: {path}")
    return None


def _files_of_split(folder: Path, files: list[Path], split: str) -> list[Path]:
    """The folder's files of ``split`` (or of one of its keywords: "dev" is validation); all
    of them when no name names a split."""
    splits = split_files([f.relative_to(folder).as_posix() for f in files])
    if splits is None:
        return files
    wanted = next((name for name, keywords in SPLIT_KEYWORDS.items() if split in keywords), split)
    if wanted not in splits:
        have = ", ".join(f"{name} ({len(names)} file{'s' * (len(names) > 1)})" for name, names in splits.items())
        raise ConfigError(f"{folder}: no file of the {split!r} split; its file and folder names give the splits: {have}")
    chosen = set(splits[wanted])
    return [f for f in files if f.relative_to(folder).as_posix() in chosen]


def _hidden(relative: Path) -> bool:
    # Skip .cache, .ipynb_checkpoints and the like inside data folders.
    return any(part.startswith(".") for part in relative.parts)


def _file_records(file: Path) -> Iterator[tuple[dict | RecordError, str]]:
    """Records of one file; a bad one comes as its RecordError."""
    kind = _kind(file)
    if kind == "parquet":
        yield from _parquet_records(file)
    elif kind == "json":
        yield from _json_records(file)
    elif kind == "jsonl":
        yield from _jsonl_records(file, _lines(file))
    else:
        yield from _text_records(file)


@contextlib.contextmanager
def _open_bytes(file: Path):
    """The file opened for reading bytes, a .gz decompressed; one that is not gzip (or is cut
    short) is a DataError naming the file. Each line is decoded on its own, so a byte that is
    not UTF-8 is told by its line."""
    try:
        with gzip.open(file, "rb") if file.name.endswith(".gz") else open(file, "rb") as f:
            yield f
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{file}: not a readable gzip file ({err or type(err).__name__})") from None


def _lines(file: Path) -> Iterator[tuple[int, str | RecordError]]:
    """``(1-based line number, text)`` of each line; a line that is not UTF-8 comes as its RecordError."""
    with _open_bytes(file) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield lineno, RecordError(not_utf8(raw, err)[1], source=f"{file}:{lineno}", kind="encoding")


def _jsonl_records(file: Path, lines) -> Iterator[tuple[dict | RecordError, str]]:
    for lineno, line in lines:
        source = f"{file}:{lineno}"
        if isinstance(line, RecordError):
            yield line, source
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield RecordError(f"invalid JSON ({err.msg}, column {err.colno})", source=source, kind="invalid_json"), source
            continue
        yield _object(record, source), source


def _json_records(file: Path) -> Iterator[tuple[dict | RecordError, str]]:
    """A JSON list of objects, one object, or (despite the suffix) one object per line."""
    with _open_bytes(file) as f:
        raw = f.read()
    text = decode_utf8(
        raw, lambda line, reason: DataError(f"{file}:{line}: {reason} (a .json file is one value: no record of it can be read)")
    )
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        yield from _jsonl_records(file, enumerate(text.splitlines(), 1))  # names the first bad line
        return
    if isinstance(data, list):
        for index, record in enumerate(data):
            source = f"{file}:#{index}"
            yield _object(record, source), source
    else:
        yield _object(data, f"{file}:1"), f"{file}:1"


def _text_records(file: Path) -> Iterator[tuple[dict | RecordError, str]]:
    """One ``{"text": line}`` record per non-empty line."""
    for lineno, line in _lines(file):
        if isinstance(line, RecordError):
            yield line, f"{file}:{lineno}"
        elif line.strip():
            yield {"text": line.rstrip("\r\n")}, f"{file}:{lineno}"


def _parquet_records(file: Path) -> Iterator[tuple[dict, str]]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except pyarrow.ArrowException as err:
        raise DataError(f"{file}: not a readable parquet file ({err})") from None
    index = 0
    for batch in parquet.iter_batches():
        for record in batch.to_pylist():
            yield record, f"{file}:#{index}"
            index += 1


def _hub_records(path: str, split: str) -> Iterator[tuple[dict, str]]:
    import datasets

    from rmkit.logs import quiet_datasets

    quiet_datasets()
    try:
        rows = datasets.load_dataset(path, split=split)
    except Exception as err:  # offline, unknown id, bad split: all mean "cannot read this"
        raise MissingPath(
            f"{path!r} is neither a local file, folder or glob nor a reachable hub dataset "
            f"(split {split!r}): {type(err).__name__}: {err}"
        ) from err
    for index, record in enumerate(rows):
        yield record, f"{path}/{split}:#{index}"


def _object(record: object, source: str) -> dict | RecordError:
    if not isinstance(record, dict):
        return RecordError(f"expected a JSON object, got {type(record).__name__}", source=source, kind="type")
    return record
