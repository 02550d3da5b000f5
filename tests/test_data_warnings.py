"""One warning line, kept in the data report, when most pairs are dropped (too long for the
length setting) or much of the text is the tokenizer's unknown token, in train and eval.

The case the warnings are for: Chinese MedicalGPT pairs through MiniLM's English WordPiece
vocabulary, one token per character, many of them [UNK]."""

import json

from rmkit.cli import main
from rmkit.config.recipe import load_recipe
from rmkit.data.data_report import DataReport
from tests.conftest import REPO

QUESTION = "医生你好，我最近头痛得厉害，晚上睡不好，应该吃什么药？"
SHORT_REPLY = "多休息，少熬夜。"
LONG_REPLY = "建议您先到医院神经内科就诊，查明头痛的原因，再对症治疗。" * 4  # ~120 characters: one token each


def test_most_dropped_and_many_unknown_are_each_one_line():
    report = DataReport(kept=4)
    report.dropped["reply_too_long"] = 6
    report.tokens, report.unknown_tokens = 1000, 60
    lines = report.check("data.max_length", "[UNK]")
    assert lines == report.warnings == report.to_dict()["warnings"] and len(lines) == 2
    assert lines[0].startswith(
        "60% of the pairs (6 of 10) were dropped (reply_too_long: 6): their reply alone is longer than data.max_length"
    )
    assert lines[1].startswith("6% of the tokens (60 of 1000) are the tokenizer's unknown token [UNK]")
    fine = DataReport(kept=5, tokens=1000, unknown_tokens=50)
    fine.dropped["reply_too_long"] = 5
    assert fine.check("data.max_length", "[UNK]") == []  # half, and 5%: not most, not many


def test_unknown_tokens_are_counted_only_where_a_tokenizer_has_them(minilm, tiny_llama):
    from transformers import AutoTokenizer

    from rmkit.conversation import PreferencePair, message
    from rmkit.data.encode import encode_pairs
    from rmkit.data.templates import use_template

    pair = PreferencePair(
        prompt=[message("user", QUESTION)], chosen=[message("assistant", SHORT_REPLY)], rejected=[message("assistant", "好")]
    )
    for path, has_unknown in ((minilm, True), (tiny_llama, False)):  # WordPiece with [UNK]; a byte-level BPE covers every text
        tokenizer = AutoTokenizer.from_pretrained(path)
        use_template(tokenizer, "plain", False)
        report = DataReport()
        encode_pairs(tokenizer, [pair], 256, report)
        assert (report.unknown_tokens > 0.3 * report.tokens > 0) == has_unknown and (report.tokens > 0) == has_unknown


def write_chinese_pairs(path, pairs: int = 10, long: int = 7):
    rows = [{"conversations": [{"from": "human", "value": QUESTION}], "chosen": LONG_REPLY if i < long else SHORT_REPLY,
             "rejected": SHORT_REPLY[: 3 + i % 3]} for i in range(pairs)]  # fmt: skip
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def test_training_warns_when_most_pairs_are_dropped_and_much_is_unknown(minilm, tmp_path, capsys):
    data = write_chinese_pairs(tmp_path / "medical_zh.jsonl", pairs=20, long=14)
    recipe = load_recipe(REPO / "recipes" / "tiny.yaml", [
        f"data.path={data}", f"train.output_dir={tmp_path / 'out'}", "data.max_length=96", "data.eval_fraction=0",
        "train.max_steps=1", "train.save_steps=null", "train.eval_steps=null",
    ])  # fmt: skip
    from rmkit.config.recipe import dump_recipe

    dump_recipe(recipe, tmp_path / "recipe.yaml")
    assert main(["train", str(tmp_path / "recipe.yaml")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rmkit: warning: ")]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("rmkit: warning: 70% of the pairs (14 of 20) were dropped (reply_too_long: 14)")
    assert "are the tokenizer's unknown token [UNK]" in warnings[1]
    report = json.loads((tmp_path / "out" / "summary.json").read_text())["data"]
    assert [f"rmkit: warning: {line}" for line in report["warnings"]] == warnings
    assert report["unknown_tokens"] > 0.05 * report["tokens"] > 0


def test_eval_warns_too(minilm, tmp_path, capsys):
    data = write_chinese_pairs(tmp_path / "medical_zh.jsonl")
    assert main(["eval", minilm, str(data), "--json", "score.max_length=96", "score.chat_template=plain"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    warnings = [line for line in captured.err.splitlines() if line.startswith("rmkit: warning: ")]
    assert warnings[-2].startswith(
        "rmkit: warning: 70% of the pairs (7 of 10) were dropped (reply_too_long: 7): "
        "their reply alone is longer than score.max_length"
    )
    assert "unknown token [UNK]" in warnings[-1]
    assert result["data_report"]["warnings"] == [line.removeprefix("rmkit: warning: ") for line in warnings[-2:]]
