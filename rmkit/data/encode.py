"""Conversations → token ids, within a length budget, counting every cut and drop.

A scored sequence is ``special prefix + prompt + reply + special suffix``: the prompt is
the conversation rendered with a generation prompt, the reply is what the full rendering
adds after it. Too long → drop the oldest turns first (the system message stays), then
cut the prompt from the left; when the reply alone does not fit, the example is dropped.
Training and scoring both go through :func:`encode_conversation`, so a reply is always
tokenized the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from rmkit.conversation import Conversation, PreferencePair
from rmkit.data.report import DataReport
from rmkit.data.templates import render
from rmkit.errors import ConfigError


class TooLong(Exception):
    """The reply alone does not fit ``max_length``."""


@dataclass
class SpecialTokens:
    """What the tokenizer adds around a text by itself (BOS; or BERT's [CLS] … [SEP])."""

    prefix: list[int]
    suffix: list[int]
    bos_text: str | None
    unknown: int | None = None  # the id text outside the vocabulary becomes ([UNK]); None: there is none

    @classmethod
    def of(cls, tokenizer) -> SpecialTokens:
        bare = tokenizer("x", add_special_tokens=False)["input_ids"]
        full = tokenizer("x", add_special_tokens=True)["input_ids"]
        start = next(i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare)
        # Byte-level BPEs (SmolLM2, GPT-2) cover every text, and name a control token (their pad/EOS) as unk.
        others = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.sep_token_id, tokenizer.cls_token_id}
        unknown = tokenizer.unk_token_id if tokenizer.unk_token_id not in others else None
        return cls(full[:start], full[start + len(bare) :], tokenizer.bos_token, unknown)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _turn_starts(messages: Conversation) -> list[int]:
    """Indices of user messages after the first: where an older-turns cut may start."""
    return [i for i, m in enumerate(messages) if m["role"] == "user"][1:]


def encode_conversation(
    tokenizer,
    messages: Conversation,
    max_length: int,
    special: SpecialTokens | None = None,
    report: DataReport | None = None,
) -> list[int]:
    """Token ids of a conversation ending with an assistant reply, at most ``max_length``.

    Raises :class:`TooLong` when the reply (with the special tokens) alone does not fit.
    """
    if messages[-1]["role"] != "assistant":
        raise ValueError("encode_conversation needs a conversation that ends with an assistant reply")
    special = special or SpecialTokens.of(tokenizer)
    system = messages[:1] if messages[0]["role"] == "system" else []
    history = messages[len(system) : -1]
    prompt_text = render(tokenizer, [*system, *history], add_generation_prompt=True)
    full_text = render(tokenizer, messages)
    if not full_text.startswith(prompt_text):
        raise ConfigError("the chat template does not render the reply after the generation prompt")
    reply = _ids(tokenizer, full_text[len(prompt_text) :])
    prefix = [] if special.bos_text and prompt_text.startswith(special.bos_text) else special.prefix
    budget = max_length - len(prefix) - len(special.suffix) - len(reply)
    if budget < 0:
        raise TooLong
    prompt = _ids(tokenizer, prompt_text)
    dropped_turns = False
    while len(prompt) > budget and _turn_starts(history):
        history = history[_turn_starts(history)[0] :]
        prompt = _ids(tokenizer, render(tokenizer, [*system, *history], add_generation_prompt=True))
        dropped_turns = True
    if report is not None and dropped_turns:
        report.truncated["oldest_turns"] += 1
    if len(prompt) > budget:
        prompt = prompt[len(prompt) - budget :] if budget else []
        if report is not None:
            report.truncated["prompt_left"] += 1
    return prefix + prompt + reply + special.suffix


def encode_pair(
    tokenizer, pair: PreferencePair, max_length: int, special: SpecialTokens, report: DataReport
) -> dict | None:
    """A pair's example, or None when a reply does not fit; ``report`` counts pairs, not
    conversations: a drop once, and each way the pair was shortened once, whichever sides were."""
    cuts = DataReport()
    try:
        chosen = encode_conversation(tokenizer, pair.chosen_conversation(), max_length, special, cuts)
        rejected = encode_conversation(tokenizer, pair.rejected_conversation(), max_length, special, cuts)
    except TooLong:
        report.dropped["reply_too_long"] += 1
        return None
    report.truncated.update(cuts.truncated.keys())
    report.count_tokens(chosen, special.unknown)
    report.count_tokens(rejected, special.unknown)
    example = {"input_ids_chosen": chosen, "input_ids_rejected": rejected}
    if pair.margin is not None:
        example["margin"] = pair.margin
    return example


def encode_pairs(
    tokenizer, pairs: list[PreferencePair], max_length: int, report: DataReport | None = None
) -> list[dict]:
    """Encode preference pairs for training; pairs that cannot fit are dropped and counted."""
    special = SpecialTokens.of(tokenizer)
    report = report if report is not None else DataReport()
    examples = (encode_pair(tokenizer, pair, max_length, special, report) for pair in pairs)
    return [example for example in examples if example is not None]
