"""Conversations → token ids, within a length budget, counting every cut and drop.

A scored sequence is ``special prefix + prompt + reply + special suffix``: the prompt is
the conversation rendered with a generation prompt, the reply is what the full rendering
adds after it. Too long → drop the oldest turns first (the system message stays), then
cut the prompt from the left; when the reply alone does not fit, the example is dropped.
Training and scoring both go through :func:`encode_conversation`, so a reply is always
tokenized the same way; sampling and chat fit their prompts with :func:`encode_prompt`,
the same shortening that :func:`encode_conversation` applies to a scored prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from rmkit.conversation import Conversation, PreferencePair
from rmkit.data.data_report import DataReport
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
        others = {
            tokenizer.pad_token_id,
            tokenizer.eos_token_id,
            tokenizer.bos_token_id,
            tokenizer.sep_token_id,
            tokenizer.cls_token_id,
        }
        unknown = tokenizer.unk_token_id if tokenizer.unk_token_id not in others else None
        return cls(full[:start], full[start + len(bare) :], tokenizer.bos_token, unknown)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _turn_starts(messages: Conversation) -> list[int]:
    """Indices of user messages after the first message: where an older-turns cut may start."""
    return [i for i, m in enumerate(messages) if m["role"] == "user" and i > 0]


@dataclass
class EncodedPrompt:
    """A prompt's token ids within its budget, and how it was shortened to get there."""

    ids: list[int]
    dropped_turns: int  # oldest exchanges left out to fit
    cut_tokens: int  # then tokens cut from the left


def encode_prompt(tokenizer, messages: Conversation, budget: int, text: str | None = None) -> EncodedPrompt:
    """``messages`` (ending with a user turn or a tool result) rendered with the generation prompt,
    in at most ``budget`` tokens: the oldest exchanges go first (never the system message, never
    the last turn), then tokens from the left. ``text``: that rendering, when the caller has it.

    No special tokens are added: the template writes any BOS itself.
    """
    system = messages[:1] if messages[0]["role"] == "system" else []
    rest = messages[len(system) :]
    ids = _ids(tokenizer, render(tokenizer, messages, add_generation_prompt=True) if text is None else text)
    dropped = 0
    while len(ids) > budget and (starts := _turn_starts(rest)):
        rest, dropped = rest[starts[0] :], dropped + 1
        ids = _ids(tokenizer, render(tokenizer, [*system, *rest], add_generation_prompt=True))
    cut = max(0, len(ids) - budget)
    return EncodedPrompt(ids[cut:], dropped, cut)


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
    prompt_text = render(tokenizer, messages[:-1], add_generation_prompt=True)
    full_text = render(tokenizer, messages)
    if not full_text.startswith(prompt_text):
        raise ConfigError("the chat template does not render the reply after the generation prompt")
    reply = _ids(tokenizer, full_text[len(prompt_text) :])
    prefix = [] if special.bos_text and prompt_text.startswith(special.bos_text) else special.prefix
    budget = max_length - len(prefix) - len(special.suffix) - len(reply)
    if budget < 0:
        raise TooLong
    prompt = encode_prompt(tokenizer, messages[:-1], budget, prompt_text)
    if report is not None and prompt.dropped_turns:
        report.truncated["oldest_turns"] += 1
    if report is not None and prompt.cut_tokens:
        report.truncated["prompt_left"] += 1
    return prefix + prompt.ids + reply + special.suffix


def encode_pair(tokenizer, pair: PreferencePair, max_length: int, special: SpecialTokens, report: DataReport) -> dict | None:
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


def encode_pairs(tokenizer, pairs: list[PreferencePair], max_length: int, report: DataReport | None = None) -> list[dict]:
    """Encode preference pairs for training; pairs that cannot fit are dropped and counted."""
    special = SpecialTokens.of(tokenizer)
    report = report if report is not None else DataReport()
    examples = (encode_pair(tokenizer, pair, max_length, special, report) for pair in pairs)
    return [example for example in examples if example is not None]
