"""Writing output files: atomically, and readable like any other file the user writes."""

import os
import stat

import pytest

from rmkit.atomic_files import write_atomic, write_json, write_jsonl


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_mode_a_plain_write_gets(tmp_path, umask):
    plain = tmp_path / "plain.jsonl"
    with open(plain, "w") as f:  # how candidates.jsonl is written: appended per prompt
        f.write("{}\n")
    write_jsonl(tmp_path / "sft.jsonl", [{"messages": []}])
    write_json(tmp_path / "stats.json", {"prompts": 1})
    write_atomic(tmp_path / "report.html", "<html></html>")
    for name in ("sft.jsonl", "stats.json", "report.html"):
        assert mode(tmp_path / name) == mode(plain) == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plain.jsonl",
        "report.html",
        "sft.jsonl",
        "stats.json",
    ]  # no temp file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "stats.json"
    write_json(path, {"a": 1})
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half \ud800")  # a lone surrogate: not UTF-8, fails inside the write
    assert path.read_text() == '{\n  "a": 1\n}\n' and [p.name for p in tmp_path.iterdir()] == ["stats.json"]
