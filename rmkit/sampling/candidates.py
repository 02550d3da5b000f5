"""A candidate record: one line of a run's ``candidates.jsonl``, and the helpers that read one.

A record is a plain dict (it is JSON on disk and in the UI), shaped as
:class:`CandidateRecord`. It holds the candidate's whole conversation (``messages``: the
prompt's fixed history, then per sampled turn the turn it answered — a user message or a
tool result — and the reply this candidate's conversation continued with) and per turn its
own reply and counts. The records of one prompt (its ``n`` candidates) are a *group*;
:func:`score_groups` scores groups in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from rmkit.conversation import ANSWERABLE, Conversation, Prompt, reply_message
from rmkit.selection.select import mark_selected, ranking

if TYPE_CHECKING:
    from rmkit.scoring.scorer_set import ScorerSet


class TurnRecord(TypedDict):
    reply: str
    tokens: int  # generated
    finish_reason: str  # "stop", "length", ...
    prompt_tokens: int  # after fitting the prompt into max_model_len - max_tokens
    dropped_turns: int  # oldest exchanges left out to fit
    cut_tokens: int  # then tokens cut from the prompt's start
    reward: float | None  # this turn's reply scored in its conversation so far
    scores: dict  # each scorer's value ({name: value}); reward is their weighted sum


class CandidateRecord(TypedDict, total=False):
    prompt_id: str
    category: str
    index: int  # k of the prompt's n candidates
    n: int
    per_turn: str  # sample.per_turn: "independent" or "best"
    messages: Conversation
    turns: list[TurnRecord]
    best_per_turn: list[int]  # best mode: the candidate continued after each turn but the last
    reward: float | None  # of the final conversation (the weighted sum of scores); None when unscored or too long to score
    scores: dict[str, float | None]  # each scorer's value (score.scorers, or "reward" alone)
    errors: dict[str, str]  # only when a verifier or scorer function raised: {scorer name: error}
    selected: bool  # the best of the n
    extra: dict  # format-specific prompt fields kept for exports (question_id, instruction, ...)
    source: str  # "file:line" of the prompt
    order: int  # the prompt's place in the prompt file (set when appended to a run)


def new_candidates(prompt: Prompt, n: int, per_turn: str) -> list[CandidateRecord]:
    """The prompt's ``n`` candidate records, before their first turn."""
    return [
        {
            "prompt_id": prompt.id,
            "category": prompt.category,
            "index": k,
            "n": n,
            "per_turn": per_turn,
            "messages": list(prompt.history),
            "turns": [],
            "best_per_turn": [],
            "reward": None,
            "selected": False,
            "extra": prompt.extra,
            "source": prompt.source,
        }
        for k in range(n)
    ]


def prompt_record(record: CandidateRecord) -> dict:
    """What a verifier or scorer function sees of a candidate's prompt."""
    return {"prompt_id": record["prompt_id"], "category": record.get("category", ""), **record.get("extra", {})}


def history_length(record: CandidateRecord) -> int:
    """How many of the record's messages are the prompt's fixed history (each turn adds two)."""
    return len(record["messages"]) - 2 * len(record["turns"])


def sampled_messages(record: CandidateRecord) -> Conversation:
    """The sampled exchanges: each answered turn and its reply, without the fixed history."""
    return record["messages"][history_length(record) :]


def prompt_messages(record: CandidateRecord) -> Conversation:
    """The prompt as the candidate saw it: the fixed history and each turn it answered."""
    return record["messages"][: history_length(record)] + [m for m in sampled_messages(record) if m["role"] in ANSWERABLE]


def through_turn(record: CandidateRecord, turn: int) -> Conversation:
    """The conversation up to this candidate's own reply at ``turn`` (what that turn is scored on)."""
    end = history_length(record) + 2 * turn + 1
    return [*record["messages"][:end], reply_message(record["turns"][turn]["reply"])]


def rank_all(rewards: list[float | None]) -> list[int]:
    """Every candidate index, best first (ties keep the lower index); the unscored last, in order."""
    order = ranking(rewards)
    return order + [i for i in range(len(rewards)) if rewards[i] is None]


def score_groups(groups: list[list[CandidateRecord]], score: ScorerSet) -> None:
    """(Re)score each prompt's candidate lines in place: each finished conversation, or in best
    mode every turn; then mark each prompt's best."""
    lines = [line for group in groups for line in group]
    items = [(line, t) for line in lines for t in (range(len(line["turns"])) if line["per_turn"] == "best" else [None])]
    conversations = [line["messages"] if t is None else through_turn(line, t) for line, t in items]
    results = score(conversations, [prompt_record(line) for line, _ in items])
    for (line, t), result in zip(items, results):
        if t is not None:
            line["turns"][t].update(result)
        if t is None or t == len(line["turns"]) - 1:
            line.pop("errors", None)  # a re-score replaces the last one's errors
            line.update(result)
    for group in groups:
        mark_selected(group)
