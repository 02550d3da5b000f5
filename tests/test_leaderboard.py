"""RM-judged leaderboard: win rates by hand, CSV merging, both input formats, the command end to end."""

import csv
import json
import math

import pytest

from rmkit.conversation import message
from rmkit.evaluation.leaderboard import (
    COLUMNS,
    Answer,
    by_model,
    leaderboard_row,
    match,
    merge_rows,
    read_answers,
    read_questions,
    score_answers,
    update_csv,
    win_rates,
)
from tests.conftest import shared_data

QUESTIONS = [
    {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Make it shorter."]},
    {"question_id": 82, "category": "math", "turns": ["What is 2+2?", "And 3+3?"]},
]


def write_json(path, value):
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def alpaca(instruction, output, generator):
    return {"instruction": instruction, "output": output, "generator": generator, "dataset": "test"}


def fastchat(qid, turns, model_id):
    return {"question_id": qid, "answer_id": f"a{qid}", "model_id": model_id, "choices": [{"index": 0, "turns": turns}]}


def scored(key, reward, model="m"):
    return Answer(key, model, [], 0, reward)


# --- win rates -------------------------------------------------------------------------


def test_win_rate_and_standard_error_by_hand():
    # win, tie, loss, win → indicators 1, .5, 0, 1: mean .625, sample variance .6875 / 3
    win_rate, stderr, n = win_rates([3.0, 1.0, 2.0, 0.0], [1.0, 1.0, 3.0, -1.0])
    assert n == 4
    assert win_rate == pytest.approx(62.5)
    assert stderr == pytest.approx(100 * math.sqrt(0.6875 / 3) / math.sqrt(4))


def test_standard_error_matches_alpaca_eval_output():
    # AlpacaEval printed win_rate 44.0, standard_error 4.988876515698589 for 44 wins of 100.
    win_rate, stderr, n = win_rates([1.0] * 44 + [0.0] * 56, [0.5] * 100)
    assert (win_rate, n) == (44.0, 100)
    assert stderr == pytest.approx(4.988876515698589)


def test_single_comparison_has_no_standard_error_and_lengths_must_agree():
    assert math.isnan(win_rates([1.0], [0.0])[1])
    with pytest.raises(ValueError, match="equally long"):
        win_rates([1.0, 2.0], [0.0])


def test_identical_answers_are_scored_once_and_tie():
    calls = []

    def score(conversations):
        calls.append(len(conversations))
        return [float(len(c[-1]["content"])) for c in conversations]

    conversation = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "same"}]
    answers = [Answer("q", "m", conversation, 4), Answer("q", "ref", list(conversation), 4)]
    score_answers(answers, score)
    assert calls == [1] and answers[0].reward == answers[1].reward == 4.0
    assert leaderboard_row([tuple(answers)], 0, "rm", "ref")["win_rate"] == 50.0


def test_row_leaves_out_and_counts_unscored_pairs():
    pairs = [
        (scored("a", 2.0), scored("a", 1.0)),
        (scored("b", None), scored("b", 1.0)),
        (scored("c", 0.0), scored("c", None)),
    ]
    row = leaderboard_row(pairs, 4, "rm", "ref")
    assert (row["win_rate"], row["n_total"], row["n_unscored"], row["n_unmatched"]) == (100.0, 1, 2, 4)
    with pytest.raises(ValueError, match="could be scored"):
        leaderboard_row(pairs[1:], 0, "rm", "ref")


# --- matching --------------------------------------------------------------------------


def test_match_pairs_by_key_and_counts_unmatched():
    reference = [scored("a", 0.0, "ref"), scored("b", 0.0, "ref")]
    answers = [scored("b", 1.0), scored("c", 1.0), scored("a", -1.0)]
    pairs, n_unmatched = match(answers, reference)
    assert [(a.key, r.key) for a, r in pairs] == [("b", "b"), ("a", "a")]
    assert n_unmatched == 1


def test_no_match_at_all_is_an_error():
    with pytest.raises(ValueError, match="none of the 2 answers of 'm' matches a reference answer"):
        match([scored("x", 1.0), scored("y", 1.0)], [scored("a", 0.0, "ref")])


def test_repeated_instruction_is_an_error():
    with pytest.raises(ValueError, match="the reference answers some instructions more than once"):
        match([scored("a", 1.0)], [scored("a", 0.0, "ref"), scored("a", 0.0, "ref")])


# --- reading both formats --------------------------------------------------------------


def test_alpaca_eval_outputs_become_single_turn_conversations(tmp_path):
    records = [alpaca("Say hi.", "Hi!", "m1"), {**alpaca("Translate.", "Bonjour", "m2"), "input": "Hello"}]
    answers = read_answers(write_json(tmp_path / "out.json", records))
    assert [(a.key, a.model, a.length) for a in answers] == [("Say hi.", "m1", 3), ("Translate.\n\nHello", "m2", 7)]
    assert answers[1].conversation == [
        {"role": "user", "content": "Translate.\n\nHello"},
        {"role": "assistant", "content": "Bonjour"},
    ]
    assert list(by_model(answers)) == ["m1", "m2"]


def test_alpaca_eval_without_generator_is_named_after_the_file(tmp_path):
    answers = read_answers(write_json(tmp_path / "my_model.json", [{"instruction": "a", "output": "b"}]))
    assert answers[0].model == "my_model"


def test_fastchat_answers_interleave_question_turns(tmp_path):
    questions = read_questions(write_jsonl(tmp_path / "question.jsonl", QUESTIONS))
    path = write_jsonl(tmp_path / "m.jsonl", [fastchat(82, ["4", "6!"], "m"), fastchat(81, ["Roses", "Red"], "m")])
    answers = read_answers(path, questions)
    assert [(a.key, a.length) for a in answers] == [("82", 3), ("81", 8)]
    assert [m["content"] for m in answers[0].conversation] == ["What is 2+2?", "4", "And 3+3?", "6!"]
    assert [m["role"] for m in answers[0].conversation] == ["user", "assistant"] * 2


def test_fastchat_needs_questions_and_matching_turns(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [fastchat(81, ["only one turn"], "m")])
    with pytest.raises(ValueError, match="--questions"):
        read_answers(path)
    with pytest.raises(ValueError, match="1 answer turns for a question with 2 turns"):
        read_answers(path, {str(q["question_id"]): q["turns"] for q in QUESTIONS})


def test_reads_what_rmkit_exports_writes(tmp_path):
    from rmkit.selection.exports import alpaca_eval_output, mt_bench_answers

    exchanges = [message("user", "Write a poem."), message("assistant", "Roses")]
    exchanges += [message("user", "Make it shorter."), message("assistant", "Red")]
    questions = read_questions(write_jsonl(tmp_path / "question.jsonl", QUESTIONS))
    fastchat_file = write_jsonl(tmp_path / "answers.jsonl", mt_bench_answers([("81", exchanges)], "bo4", 0.0))
    assert [(a.key, a.model, a.conversation) for a in read_answers(fastchat_file, questions)] == [("81", "bo4", exchanges)]
    record = alpaca_eval_output(exchanges[:2], {"instruction": "Write", "input": "a poem."}, "bo4")
    (answer,) = read_answers(write_json(tmp_path / "outputs.json", [record]))
    assert (answer.key, answer.model, answer.length) == ("Write\n\na poem.", "bo4", len("Roses"))


def test_mt_bench_reference_answers_match_by_question_id(tmp_path):
    questions = read_questions(shared_data("mt_bench/question.jsonl"))
    reference = read_answers(shared_data("mt_bench/reference_answer/gpt-4.jsonl"), questions)
    model = write_jsonl(tmp_path / "m.jsonl", [fastchat(q, ["a", "b"], "m") for q in questions])
    pairs, n_unmatched = match(read_answers(model, questions), reference)
    assert (len(pairs), n_unmatched) == (30, 50)  # the reference covers reasoning, math and coding only
    assert all(a.key == r.key and a.conversation[::2] == r.conversation[::2] for a, r in pairs)


# --- the CSV ---------------------------------------------------------------------------


def row(model, judge, win_rate):
    return {
        "model": model,
        "win_rate": win_rate,
        "standard_error": 1.0,
        "n_total": 3,
        "n_unmatched": 0,
        "n_unscored": 0,
        "avg_length": 10.0,
        "judge": judge,
        "reference": "ref",
    }


def test_merge_replaces_same_model_and_judge_and_sorts_by_win_rate():
    existing = [row("a", "rm1", "40.0"), row("b", "rm1", "60.0"), row("a", "rm2", "55.0")]
    merged = merge_rows(existing, [row("a", "rm1", 70.0), row("c", "rm1", 10.0)])
    assert [(r["model"], r["judge"], float(r["win_rate"])) for r in merged] == [
        ("a", "rm1", 70.0),
        ("b", "rm1", 60.0),
        ("a", "rm2", 55.0),
        ("c", "rm1", 10.0),
    ]


def test_update_csv_appends_then_replaces(tmp_path):
    path = tmp_path / "results" / "leaderboard.csv"
    update_csv(path, [row("a", "rm1", 40.0), row("b", "rm1", 60.0)])
    update_csv(path, [row("a", "rm1", 80.0)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS
    assert [(r["model"], float(r["win_rate"])) for r in rows] == [("a", 80.0), ("b", 60.0)]


# --- end to end ------------------------------------------------------------------------


def test_rmkit_leaderboard_end_to_end(tmp_path, tiny_llama, capsys):
    from rmkit.cli import main

    instructions = ["What is the capital of France?", "Write a short poem about the sea.", "Tell me a story."]
    reference = write_json(tmp_path / "ref.json", [alpaca(i, "I am fine, thank you.", "ref") for i in instructions])
    good = write_json(tmp_path / "good.json", [alpaca(i, "Paris is the capital of France.", "good") for i in instructions])
    extra = [alpaca("An instruction the reference lacks.", "no", "short")]
    short = write_json(tmp_path / "short.json", [alpaca(i, "no", "short") for i in instructions[:2]] + extra)
    board = tmp_path / "leaderboard.csv"
    argv = [
        "leaderboard",
        str(good),
        str(short),
        "--reference",
        str(reference),
        "--reward-model",
        str(tiny_llama),
        "--output",
        str(board),
        "--judge",
        "tiny",
        "--batch-size",
        "2",
        "--max-length",
        "128",
    ]

    assert main(argv) == 0
    assert main(argv) == 0  # a second run replaces its rows
    with open(board, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS
    counts = {r["model"]: (r["n_total"], r["n_unmatched"], r["n_unscored"]) for r in rows}
    assert len(rows) == 2 and counts == {"good": ("3", "0", "0"), "short": ("2", "1", "0")}
    good_row = next(r for r in rows if r["model"] == "good")
    assert float(good_row["avg_length"]) == len("Paris is the capital of France.")
    assert all(0 <= float(r["win_rate"]) <= 100 and (r["judge"], r["reference"]) == ("tiny", "ref") for r in rows)
    printed = capsys.readouterr().out
    assert "judge: tiny" in printed and "good" in printed and "unmatched" in printed


def test_command_takes_the_judge_from_a_recipe_and_overrides(tiny_llama, tmp_path, capsys):
    from rmkit.cli import main

    reference = write_json(tmp_path / "ref.json", [alpaca("Hello! How are you?", "bad", "ref")])
    outputs = write_json(tmp_path / "m.json", [alpaca("Hello! How are you?", "I am fine, thank you.", "m")])
    csv_path = tmp_path / "board.csv"
    assert main(["leaderboard", str(outputs), "--reference", str(reference), "--output", str(csv_path)]) == 2
    assert "rmkit: error: no judge: give --reward-model" in capsys.readouterr().err
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"score:\n  reward_model: {tiny_llama}\n  max_length: 4\n")
    argv = [
        str(outputs),
        "score.max_length=256",
        "--reference",
        str(reference),
        "--output",
        str(csv_path),
        "--recipe",
        str(recipe),
    ]
    assert main(["leaderboard", *argv]) == 0
    (row,) = list(csv.DictReader(csv_path.open()))
    assert (row["model"], row["judge"], row["n_total"], row["n_unscored"]) == (
        "m",
        str(tiny_llama),
        "1",
        "0",
    )  # 256 fits, 4 would not
