import gzip
import json

import pytest

from rmkit.conversation import RecordError
from rmkit.data.sources import file_stem, read_records, split_files, split_heldout, subset_of
from rmkit.errors import ConfigError, DataError, MissingPath


def write_jsonl(path, records, blank_line_after=None):
    lines = [json.dumps(r) for r in records]
    if blank_line_after is not None:
        lines.insert(blank_line_after, "   ")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sources(path, **kwargs):
    return [source for _, source in read_records(str(path), **kwargs)]


def test_jsonl_sources_are_one_based_lines_and_skip_blank_lines(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"a": 1}, {"a": 2}], blank_line_after=1)
    assert list(read_records(str(path))) == [({"a": 1}, f"{path}:1"), ({"a": 2}, f"{path}:3")]


def test_jsonl_gz(tmp_path):
    path = tmp_path / "test.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write('{"a": 1}\n{"a": "é"}\n')
    assert list(read_records(str(path))) == [({"a": 1}, f"{path}:1"), ({"a": "é"}, f"{path}:2")]


def test_json_list_is_located_by_index(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"a": 1}, {"a": 2}], indent=2))
    assert list(read_records(str(path))) == [({"a": 1}, f"{path}:#0"), ({"a": 2}, f"{path}:#1")]


def test_json_one_object_per_line_and_single_object(tmp_path):
    lines = write_jsonl(tmp_path / "lines.json", [{"a": 1}, {"a": 2}])
    assert sources(lines) == [f"{lines}:1", f"{lines}:2"]
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"a": 1}, indent=2))
    assert list(read_records(str(single))) == [({"a": 1}, f"{single}:1")]


def test_parquet_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist([{"a": 1, "b": "x"}, {"a": 2, "b": None}]), path)
    assert list(read_records(str(path))) == [({"a": 1, "b": "x"}, f"{path}:#0"), ({"a": 2, "b": None}, f"{path}:#1")]


def test_text_file_yields_non_empty_lines(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("first\n\n  \nsecond line\n", encoding="utf-8")
    assert list(read_records(str(path))) == [({"text": "first"}, f"{path}:1"), ({"text": "second line"}, f"{path}:4")]


def test_folder_is_read_recursively_in_sorted_order_skipping_hidden_and_other_files(tmp_path):
    for folder in ("b", "a", ".cache"):
        (tmp_path / folder).mkdir()
    write_jsonl(tmp_path / "b" / "pairs.jsonl", [{"n": "b"}])
    write_jsonl(tmp_path / "a" / "pairs.jsonl", [{"n": "a"}])
    write_jsonl(tmp_path / "c.jsonl", [{"n": "c"}])
    write_jsonl(tmp_path / ".cache" / "x.jsonl", [{"n": "hidden"}])
    (tmp_path / "README.md").write_text("not data")
    assert [record["n"] for record, _ in read_records(str(tmp_path))] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "files, splits",
    [
        (  # the HH-RLHF repository: a split per file name, in every subset folder
            ["harmless-base/test.jsonl.gz", "harmless-base/train.jsonl.gz", "helpful-base/train.jsonl.gz"],
            {"train": ["harmless-base/train.jsonl.gz", "helpful-base/train.jsonl.gz"], "test": ["harmless-base/test.jsonl.gz"]},
        ),
        (  # split folders win over file names; dev is validation
            ["dev/b.jsonl", "test/train_notes.jsonl", "train/a.jsonl"],
            {"train": ["train/a.jsonl"], "validation": ["dev/b.jsonl"], "test": ["test/train_notes.jsonl"]},
        ),
        (  # hub shards name any split
            ["data/custom-00000-of-00001.parquet", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"],
            {
                "custom": ["data/custom-00000-of-00001.parquet"],
                "train": ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"],
            },
        ),
        (  # a keyword counts as a word of the name only
            ["contest.jsonl", "my_train.jsonl", "pairs.eval.json", "val2.jsonl"],
            {"train": ["my_train.jsonl"], "validation": ["val2.jsonl"], "test": ["pairs.eval.json"]},
        ),
        (["contest.jsonl", "pairs.jsonl", "trainer/x.jsonl"], None),  # no split named: one unnamed split
    ],
)
def test_split_files_names_splits_as_the_datasets_library_does(files, splits):
    assert split_files(files) == splits


def hh_rlhf_clone(root):
    for subset in ("harmless-base", "helpful-base"):
        (root / subset).mkdir(parents=True)
        for split in ("train", "test"):
            write_jsonl(root / subset / f"{split}.jsonl", [{"subset": subset, "split": split}])
    return root


def test_a_folder_is_read_for_the_asked_split_only(tmp_path):
    """A clone of the HH-RLHF repository holds train and test files: training must not read the test ones."""
    root = hh_rlhf_clone(tmp_path / "hh-rlhf")
    files = []
    records = [record for record, _ in read_records(str(root), files_read=files)]
    assert records == [{"subset": "harmless-base", "split": "train"}, {"subset": "helpful-base", "split": "train"}]
    assert files == [str(root / "harmless-base" / "train.jsonl"), str(root / "helpful-base" / "train.jsonl")]
    assert {record["split"] for record, _ in read_records(str(root), split="test")} == {"test"}
    assert {record["split"] for record, _ in read_records(str(root), split="testing")} == {"test"}  # a keyword of it


def test_a_folder_without_the_asked_split_names_the_ones_it_has(tmp_path):
    (tmp_path / "helpful-base").mkdir()
    write_jsonl(tmp_path / "helpful-base" / "test.jsonl", [{"a": 1}])
    write_jsonl(tmp_path / "dev.jsonl", [{"a": 2}])
    with pytest.raises(ConfigError, match=r"no file of the 'train' split.*: validation \(1 file\), test \(1 file\)$"):
        list(read_records(str(tmp_path)))
    assert len(list(read_records(str(tmp_path), split=None))) == 2  # no split: every file


def test_unsplit_folders_files_and_globs_are_read_whole(tmp_path):
    write_jsonl(tmp_path / "pairs.jsonl", [{"a": 1}])
    assert len(list(read_records(str(tmp_path), split="test"))) == 1  # nothing to tell apart
    root = hh_rlhf_clone(tmp_path / "hh-rlhf")
    assert len(list(read_records(str(root / "helpful-base" / "test.jsonl"), split="train"))) == 1  # named: read
    assert len(list(read_records(str(root / "*" / "*.jsonl"), split="train"))) == 4  # a glob names its files


def test_glob_pattern(tmp_path):
    for name in ("x1.jsonl", "x2.jsonl", "y.jsonl"):
        write_jsonl(tmp_path / name, [{"name": name}])
    assert [r["name"] for r, _ in read_records(str(tmp_path / "x*.jsonl"))] == ["x1.jsonl", "x2.jsonl"]
    with pytest.raises(MissingPath, match="no data files match"):
        list(read_records(str(tmp_path / "z*.jsonl")))


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: invalid JSON") as info:
        list(read_records(str(path)))
    assert info.value.source == f"{path}:2"


def test_invalid_json_in_a_json_file_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1}\n{"a": 2}\n{oops}\n')
    with pytest.raises(RecordError, match=r"bad\.json:3: invalid JSON"):
        list(read_records(str(path)))


def test_bad_lines_can_be_yielded_and_reading_goes_on(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n[1, 2]\n{"a": 4}\n')
    read = list(read_records(str(path), errors="yield"))
    assert [source for _, source in read] == [f"{path}:{n}" for n in (1, 2, 3, 4)]
    assert [r.kind if isinstance(r, RecordError) else r for r, _ in read] == [{"a": 1}, "invalid_json", "type", {"a": 4}]


def test_a_line_that_is_not_utf8_is_named_by_its_line_and_reading_goes_on(tmp_path):
    lines = b'{"a": 1}\n{"a": "caf\xe9"}\n{"a": "\xc3\xa9"}\n'  # a Latin-1 byte on line 2; UTF-8 on line 3
    plain, packed, text = tmp_path / "latin1.jsonl", tmp_path / "latin1.jsonl.gz", tmp_path / "latin1.txt"
    plain.write_bytes(lines)
    packed.write_bytes(gzip.compress(lines))
    text.write_bytes(lines)
    for path in (plain, packed, text):
        with pytest.raises(RecordError, match=r"latin1\.\w+(\.gz)?:2: not UTF-8 text \(byte 0xe9 at column 11\)") as info:
            list(read_records(str(path)))
        assert info.value.kind == "encoding"
        read = list(read_records(str(path), errors="yield"))
        assert [source for _, source in read] == [f"{path}:{n}" for n in (1, 2, 3)]
        assert isinstance(read[1][0], RecordError) and read[2][0] in ({"a": "é"}, {"text": '{"a": "é"}'})


def test_a_json_file_that_is_not_utf8_names_the_line_and_cannot_be_skipped(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_bytes(b'[\n  {"a": 1},\n  {"a": "caf\xe9"}\n]\n')
    with pytest.raises(DataError, match=r"outputs\.json:3: not UTF-8 text .*no record of it can be read"):
        list(read_records(str(path), errors="yield"))


def test_a_damaged_gzip_or_parquet_file_is_named(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "pairs.jsonl.gz"
    path.write_text('{"a": 1}\n')  # not compressed
    with pytest.raises(DataError, match=r"pairs\.jsonl\.gz: not a readable gzip file"):
        list(read_records(str(path)))
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n' * 100)[:-30])  # cut short
    with pytest.raises(DataError, match=r"pairs\.jsonl\.gz: not a readable gzip file"):
        list(read_records(str(path)))
    path = tmp_path / "pairs.parquet"
    path.write_text("not parquet")
    with pytest.raises(DataError, match=r"pairs\.parquet: not a readable parquet file"):
        list(read_records(str(path)))


def test_a_record_must_be_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('[{"a": 1}, "text"]')
    with pytest.raises(RecordError, match=r"list\.json:#1: expected a JSON object, got str") as info:
        list(read_records(str(path)))
    assert info.value.kind == "type"


def test_missing_or_unsupported_local_files(tmp_path):
    with pytest.raises(MissingPath, match="no such file"):
        list(read_records(str(tmp_path / "absent.jsonl")))
    with pytest.raises(MissingPath, match="no data files"):
        list(read_records(str(tmp_path)))
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        list(read_records(str(tmp_path / "data.csv")))


def test_unreachable_hub_id_says_what_was_tried(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingPath, match="neither a local file.*nor a reachable hub dataset"):
        list(read_records("no-such-org/no-such-dataset"))


@pytest.mark.parametrize(
    "path, stem, subset",
    [
        ("hh_rlhf/helpful-base/test.jsonl.gz", "test", "helpful-base"),
        ("data/my_pairs.jsonl", "my_pairs", "my_pairs"),
        ("ultra/data/train-00000-of-00003.parquet", "train-00000-of-00003", "data"),
        ("validation.json", "validation", "validation"),
        ("prompts.txt", "prompts", "prompts"),
    ],
)
def test_file_stem_and_subset(path, stem, subset):
    assert file_stem(path) == stem
    assert subset_of(path) == subset


def test_split_heldout_is_deterministic_disjoint_and_order_keeping():
    items = list(range(100))
    train, heldout = split_heldout(items, 0.1, seed=7)
    assert (train, heldout) == split_heldout(items, 0.1, seed=7)
    assert len(heldout) == 10 and sorted(train + heldout) == items
    assert train == sorted(train) and heldout == sorted(heldout)
    assert split_heldout(items, 0.1, seed=8)[1] != heldout


def test_split_heldout_edge_sizes():
    assert split_heldout([1, 2, 3], 0.0, seed=0) == ([1, 2, 3], [])
    assert len(split_heldout([1, 2, 3], 0.01, seed=0)[1]) == 1  # at least one held out
    assert len(split_heldout([1, 2], 0.9, seed=0)[0]) == 1  # at least one left to train
    assert split_heldout([1], 0.5, seed=0) == ([1], [])
    with pytest.raises(ValueError, match="fraction"):
        split_heldout([1, 2], 1.0, seed=0)
