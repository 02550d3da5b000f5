"""Win rates against a reference model, judged by a reward model: an AlpacaEval-style leaderboard.

Like AlpacaEval's ``make_leaderboard``, with the reward model as the judge and no API key:
a model's answer wins when the RM scores it above the reference model's answer to the
same instruction (AlpacaEval outputs) or MT-bench question (FastChat answer files); a tie
counts half. Rows are appended to a CSV, replacing those of the same model and judge.

The judge's settings are the recipe's ``score`` section (``--recipe`` and ``section.key=value``
overrides after the outputs; ``--reward-model``, ``--batch-size``, ``--max-length``, ``--dtype``
and ``--backend`` are shorthands for its keys).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rmkit.conversation import Conversation, RecordError, reply_message, turn_message
from rmkit.data.formats import load_prompts, parse_prompt
from rmkit.data.sources import file_stem, read_records
from rmkit.errors import ConfigError, DataError

COLUMNS = ["model", "win_rate", "standard_error", "n_total", "n_unmatched", "n_unscored", "avg_length", "judge", "reference"]


@dataclass
class Answer:
    """One model's answer to one instruction or question, as a conversation."""

    key: str  # what matches it to the reference: the instruction, or the MT-bench question id
    model: str
    conversation: Conversation
    length: int  # characters of the model's reply (all its turns)
    reward: float | None = None  # filled in by score_answers


# --- reading outputs -------------------------------------------------------------------


def read_questions(path: str | Path) -> dict[str, list[str]]:
    """MT-bench questions: question id (a string, as ``Prompt.id``) → the user turns."""
    return {prompt.id: prompt.turns for prompt in load_prompts(str(path), format="mt_bench")}


def read_answers(path: str | Path, questions: dict[str, list[str]] | None = None) -> list[Answer]:
    """AlpacaEval outputs (JSON list) or FastChat MT-bench answers (with ``choices``), as answers.

    The model is each record's ``generator`` / ``model_id``, else the file's name.
    """
    default_model = file_stem(str(path))
    return [
        _fastchat_answer(record, questions, default_model, source)
        if "choices" in record
        else _alpaca_eval_answer(record, default_model, source)
        for record, source in read_records(str(path))
    ]


def _alpaca_eval_answer(record: dict, default_model: str, source: str) -> Answer:
    instruction = parse_prompt(record, source, "alpaca_eval").turns[0]  # with the optional input
    output = _text(record.get("output"), source, "output")
    conversation = [turn_message(instruction), reply_message(output)]
    return Answer(instruction, record.get("generator") or default_model, conversation, len(output))


def _fastchat_answer(record: dict, questions: dict[str, list[str]] | None, default_model: str, source: str) -> Answer:
    """The question's turns interleaved with the first choice's turns."""
    if questions is None:
        raise ConfigError(f"{source}: MT-bench answers need the questions they answer (--questions question.jsonl)")
    qid = str(record.get("question_id"))
    if qid not in questions:
        raise RecordError(f"question_id {qid} is not in the questions file", source=source, field="question_id")
    asked, replies = questions[qid], record["choices"][0]["turns"]
    if len(asked) != len(replies):
        reason = f"{len(replies)} answer turns for a question with {len(asked)} turns"
        raise RecordError(reason, source=source, field="choices[0].turns")
    conversation = []
    for user, assistant in zip(asked, replies):
        conversation += [turn_message(user), reply_message(_text(assistant, source, "choices[0].turns"))]
    return Answer(qid, record.get("model_id") or default_model, conversation, sum(map(len, replies)))


def _text(value: object, source: str, field: str) -> str:
    if not isinstance(value, str):
        raise RecordError("expected a string", source=source, field=field, kind="missing" if value is None else "type")
    return value


def by_model(answers: list[Answer]) -> dict[str, list[Answer]]:
    """Answers grouped by the model that wrote them, in first-seen order."""
    groups: dict[str, list[Answer]] = {}
    for answer in answers:
        groups.setdefault(answer.model, []).append(answer)
    return groups


# --- matching and win rates ------------------------------------------------------------


def match(answers: list[Answer], reference: list[Answer]) -> tuple[list[tuple[Answer, Answer]], int]:
    """Pair each answer with the reference's answer to the same key; return ``(pairs, n_unmatched)``.

    Raises when no answer matches at all: the outputs and the reference are then for
    different instructions (or formats), and a win rate over nothing would hide that.
    """
    by_key = _unique_keys(reference, "the reference")
    _unique_keys(answers, f"model {answers[0].model!r}")
    pairs = [(a, by_key[a.key]) for a in answers if a.key in by_key]
    if not pairs:
        raise DataError(
            f"none of the {len(answers)} answers of {answers[0].model!r} matches a reference answer "
            f"(first key: {str(answers[0].key)[:80]!r}); are the outputs and --reference for the same instructions?"
        )
    return pairs, len(answers) - len(pairs)


def _unique_keys(answers: list[Answer], what: str) -> dict:
    by_key = {a.key: a for a in answers}
    if len(by_key) != len(answers):
        raise DataError(f"{what} answers some instructions more than once ({len(answers) - len(by_key)} repeats)")
    return by_key


def win_rates(model_rewards: list[float], reference_rewards: list[float]) -> tuple[float, float, int]:
    """``(win_rate, standard_error, n)`` in percent, as AlpacaEval reports them.

    The per-example indicator is 1 for a win, 0.5 for a tie and 0 for a loss; the standard
    error is its sample standard deviation over sqrt(n) (pandas ``sem``), NaN for n = 1.
    """
    if len(model_rewards) != len(reference_rewards) or not model_rewards:
        raise ValueError("win_rates needs two equally long, non-empty lists of rewards")
    wins = [1.0 if m > r else 0.5 if m == r else 0.0 for m, r in zip(model_rewards, reference_rewards)]
    n = len(wins)
    stderr = statistics.stdev(wins) / math.sqrt(n) if n > 1 else math.nan
    return 100 * statistics.fmean(wins), 100 * stderr, n


def leaderboard_row(pairs: list[tuple[Answer, Answer]], n_unmatched: int, judge: str, reference: str) -> dict:
    """One CSV row for a model, from its scored ``(answer, reference answer)`` pairs.

    Pairs where either reply could not be scored (longer than the RM's max length) are
    left out and counted.
    """
    model = pairs[0][0].model
    scored = [(a, r) for a, r in pairs if a.reward is not None and r.reward is not None]
    if not scored:
        raise DataError(f"no answer of {model!r} could be scored against the reference: raise --max-length?")
    win_rate, stderr, n = win_rates([a.reward for a, _ in scored], [r.reward for _, r in scored])
    return {
        "model": model,
        "win_rate": win_rate,
        "standard_error": stderr,
        "n_total": n,
        "n_unmatched": n_unmatched,
        "n_unscored": len(pairs) - n,
        "avg_length": statistics.fmean(a.length for a, _ in scored),
        "judge": judge,
        "reference": reference,
    }


# --- the CSV and the table -------------------------------------------------------------


def merge_rows(existing: list[dict], new: list[dict]) -> list[dict]:
    """Replace rows of the same model and judge, add the others, highest win rate first."""
    replaced = {(row["model"], row["judge"]) for row in new}
    kept = [row for row in existing if (row["model"], row["judge"]) not in replaced]
    return sorted(kept + new, key=lambda row: float(row["win_rate"]), reverse=True)


def update_csv(path: str | Path, rows: list[dict]) -> list[dict]:
    """Merge ``rows`` into the leaderboard CSV at ``path`` (created if absent); return all rows."""
    path = Path(path)
    existing = []
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            existing = list(csv.DictReader(f))
    merged = merge_rows(existing, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(merged)
    return merged


def format_table(rows: list[dict]) -> str:
    """Rows as an aligned text table (CSV rows hold strings, so everything is re-parsed)."""
    header = ["model", "win_rate", "std_err", "n", "unmatched", "unscored", "avg_length"]
    cells = [
        [
            str(row["model"]),
            f"{float(row['win_rate']):.2f}",
            f"{float(row['standard_error']):.2f}",
            str(row["n_total"]),
            str(row["n_unmatched"]),
            str(row["n_unscored"]),
            f"{float(row['avg_length']):.0f}",
        ]
        for row in rows
    ]
    widths = [max(map(len, column)) for column in zip(header, *cells)]
    lines = [[c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))] for line in [header, *cells]]
    return "\n".join("  ".join(line) for line in lines)


# --- scoring and the command -----------------------------------------------------------


def score_answers(answers: list[Answer], score: Callable[[list[Conversation]], list[float | None]]) -> None:
    """Set ``reward`` on every answer with one call of ``score`` (a reward model of rmkit.scoring.reward_models).

    Each distinct conversation is scored once, so identical answers tie exactly instead of
    differing by the rounding of different padded batches.
    """
    unique = {_conversation_key(a): a.conversation for a in answers}
    rewards = dict(zip(unique, score(list(unique.values()))))
    for answer in answers:
        answer.reward = rewards[_conversation_key(answer)]


def _conversation_key(answer: Answer) -> str:
    return json.dumps(answer.conversation)


SCORE_FLAGS = ("score.reward_model", "score.batch_size", "score.max_length", "score.dtype", "score.backend")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rmkit.config.command_line import add_recipe_arguments

    parser.add_argument(
        "outputs",
        nargs="+",
        metavar="OUTPUTS [section.key=value ...]",
        help="model outputs: AlpacaEval JSON lists or FastChat MT-bench answer files; then recipe overrides",
    )
    parser.add_argument("--reference", required=True, help="the reference model's outputs, in the same format")
    parser.add_argument("--questions", help="MT-bench question.jsonl (needed for FastChat answer files)")
    parser.add_argument("--output", default="leaderboard.csv", help="leaderboard CSV to create or update")
    parser.add_argument("--judge", help="judge name in the CSV (default: the reward model path)")
    add_recipe_arguments(parser, SCORE_FLAGS, overrides=False)


def run(args: argparse.Namespace) -> int:
    from rmkit.config.command_line import recipe_from_args, split_overrides
    from rmkit.scoring.reward_models import load_scorer

    outputs, overrides = split_overrides(args.outputs)
    cfg = recipe_from_args(args, SCORE_FLAGS, overrides).score
    if not outputs:
        raise ConfigError("give at least one model output file before the section.key=value overrides")
    if not cfg.reward_model:
        raise ConfigError("no judge: give --reward-model PATH (or score.reward_model in the recipe)")
    questions = read_questions(args.questions) if args.questions else None
    reference = read_answers(args.reference, questions)
    reference_name = ", ".join(by_model(reference))
    answers = [answer for path in outputs for answer in read_answers(path, questions)]
    matched = {model: match(group, reference) for model, group in by_model(answers).items()}
    score_answers(
        [answer for pairs, _ in matched.values() for pair in pairs for answer in pair], load_scorer(cfg, "--reward-model")
    )

    judge = args.judge or cfg.reward_model
    rows = [leaderboard_row(pairs, n_unmatched, judge, reference_name) for pairs, n_unmatched in matched.values()]
    board = update_csv(args.output, rows)
    print(f"judge: {judge}   reference: {reference_name}   ({args.output})")
    print(format_table([row for row in board if row["judge"] == judge]))
    return 0
