"""Output formats, each written from conversations: SFT, DPO pairs, FastChat MT-bench, AlpacaEval.

- SFT: ``{"messages": [...]}`` per line (HF / TRL chat format).
- Pairs: ``{"prompt": [...], "chosen": [...], "rejected": [...]}`` per line (TRL's
  conversational preference format); the prompt is what both conversations share.
- FastChat MT-bench answers: ``question_id``, ``answer_id``, ``model_id``,
  ``choices: [{index, turns}]``, ``tstamp``; one line per question, sorted, no duplicates.
- AlpacaEval outputs: a JSON list of ``{instruction, input, output, generator, dataset, datasplit}``.
"""

from __future__ import annotations

import hashlib
import json

from rmkit.conversation import ANSWERABLE, Conversation, tools_of, without_tools


def sft_record(messages: Conversation) -> dict:
    return _with_tools_field({"messages": without_tools(messages)}, messages)


def pair_record(chosen: Conversation, rejected: Conversation) -> dict:
    """Split two conversations at the last user message (or tool result) they share."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    while shared and chosen[shared - 1]["role"] not in ANSWERABLE:
        shared -= 1
    if not shared:
        raise ValueError("the two conversations share no prompt")
    record = {"prompt": without_tools(chosen[:shared]), "chosen": chosen[shared:], "rejected": rejected[shared:]}
    return _with_tools_field(record, chosen)


def _with_tools_field(record: dict, messages: Conversation) -> dict:
    """The conversation's tool schemas as a top-level ``tools`` field, as TRL reads them."""
    tools = tools_of(messages)
    return record if tools is None else {**record, "tools": tools}


def mt_bench_answers(answers: list[tuple[int | str, Conversation]], model_id: str, tstamp: float) -> list[dict]:
    """FastChat answer records from ``(question_id, exchanges)``: the first answer per question, sorted.

    ``exchanges`` are the sampled turns (user and assistant messages, no fixed history).
    """
    by_question: dict[int | str, dict] = {}
    for question_id, exchanges in answers:
        question_id = int(question_id) if str(question_id).isdigit() else question_id
        if question_id in by_question:
            continue
        turns = [m["content"] for m in exchanges if m["role"] == "assistant"]
        by_question[question_id] = {
            "question_id": question_id,
            "answer_id": _answer_id(model_id, question_id, turns),
            "model_id": model_id,
            "choices": [{"index": 0, "turns": turns}],
            "tstamp": tstamp,
        }
    return [by_question[q] for q in sorted(by_question, key=lambda q: (isinstance(q, str), q))]


def _answer_id(model_id: str, question_id: int | str, turns: list[str]) -> str:
    # Stable, so rewriting the file from the same candidates gives the same ids.
    return hashlib.blake2b(json.dumps([model_id, question_id, turns]).encode(), digest_size=11).hexdigest()


def alpaca_eval_output(messages: Conversation, extra: dict, generator: str, dataset: str = "") -> dict:
    """One AlpacaEval output: the instruction as the prompt file gave it, and the last reply."""
    last_user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    return {
        "instruction": extra.get("instruction", last_user),
        "input": extra.get("input", ""),
        "output": messages[-1]["content"],
        "generator": generator,
        "dataset": extra.get("dataset", dataset),
        "datasplit": "eval",
    }
