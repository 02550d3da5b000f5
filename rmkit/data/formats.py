"""Dataset formats -> the conversation types: preference pairs to train on, prompts to sample.

Pair formats: ``hh_rlhf``, ``trl``, ``medicalgpt``, ``sharegpt``. Prompt formats:
``mt_bench``, ``messages``, ``sharegpt``, ``hh_rlhf``, ``alpaca_eval``, ``text`` (also ``.txt``
files, one prompt a line). Tool use is read from TRL / OpenAI messages (``tool_calls``,
``role: tool``) and ShareGPT turns (``function_call``, ``observation``), with the schemas from a
record's ``tools`` field (a list, or a JSON string of one). A bad record raises
:class:`RecordError` naming its file, line and field, with a kind (missing, type, empty,
identical, invalid) that ``on_error="skip"`` counts in a :class:`DataReport`; the field
checks and turn readers they share are in :mod:`rmkit.data.records`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from rmkit.config.sections import DataConfig
from rmkit.conversation import (
    ANSWERABLE,
    Conversation,
    Message,
    PreferencePair,
    Prompt,
    RecordError,
    reply_message,
    turn_message,
    validate_conversation,
)
from rmkit.data.data_report import DataReport
from rmkit.data.records import (
    TURN_MARK,
    nonempty_reply,
    optional,
    parse_records,
    reply_of,
    required,
    sharegpt_conversation,
    sharegpt_message,
    strip_space,
    transcript,
    with_system_and_tools,
)
from rmkit.data.sources import file_stem, split_heldout, subset_of
from rmkit.errors import ConfigError

PAIR_FORMATS = ("hh_rlhf", "trl", "medicalgpt", "sharegpt")
PROMPT_FORMATS = ("mt_bench", "messages", "sharegpt", "hh_rlhf", "alpaca_eval", "text")

ASSISTANT_MARK = "\n\nAssistant:"  # where an HH-RLHF transcript's reply starts


# ----------------------------------------------------------------------------- pairs


def detect_pair_format(record: dict, source: str = "") -> str:
    """The pair format a record's keys show."""
    if "conversations" in record:
        return "sharegpt"
    if "question" in record or "response_chosen" in record:
        return "medicalgpt"
    if "chosen" in record:
        return "trl" if "prompt" in record or isinstance(record["chosen"], list) else "hh_rlhf"
    raise RecordError(
        f"cannot detect the pair format from keys {sorted(record)}: expected 'chosen'/'rejected' transcripts "
        "(hh_rlhf), 'prompt'/'chosen'/'rejected' or message lists (trl), 'question'/'response_chosen'/"
        "'response_rejected' (medicalgpt) or 'conversations'/'chosen'/'rejected' (sharegpt)",
        source=source,
    )


def parse_pair(record: dict, source: str, format: str = "auto") -> PreferencePair:
    """One record -> a PreferencePair; raises RecordError for a bad record."""
    if format != "auto" and format not in PAIR_FORMATS:
        raise ConfigError(f"unknown pair format {format!r}: expected auto or one of {', '.join(PAIR_FORMATS)}")
    fmt = detect_pair_format(record, source) if format == "auto" else format
    return _PAIR_PARSERS[fmt](record, source)


def load_pairs(
    path: str, format: str = "auto", on_error: str = "raise", report: DataReport | None = None, split: str = "train"
) -> list[PreferencePair]:
    """All pairs in a file, folder (its ``split``'s files), glob or hub dataset, each tagged with its subset."""

    def parse(record: dict, source: str) -> PreferencePair:
        pair = parse_pair(record, source, format)
        pair.subset = subset_of(source.rpartition(":")[0])
        return pair

    return parse_records(path, parse, on_error, report, split)


def load_pair_split(data: DataConfig, report: DataReport | None = None) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """``(train, held-out)`` pairs as a recipe's ``data`` section (a DataConfig) defines them:
    ``eval_path`` when given, else a seeded ``eval_fraction`` of ``path``; ``max_examples`` caps both.

    Training and ``rmkit eval --heldout`` both split here, so they see the same held-out pairs.
    """
    pairs = load_pairs(data.path, data.format, data.on_error, report, data.split)
    if data.eval_path:
        train, heldout = pairs, load_pairs(data.eval_path, data.format, data.on_error, report, data.split)
    else:
        train, heldout = split_heldout(pairs, data.eval_fraction, data.seed)
    if data.max_examples is not None:
        train, heldout = train[: data.max_examples], heldout[: data.max_examples]
    return train, heldout


def _hh_rlhf_pair(record: dict, source: str) -> PreferencePair:
    chosen, rejected = required(record, "chosen", source, str), required(record, "rejected", source, str)
    if chosen == rejected:
        raise RecordError("chosen and rejected are identical", source=source, field="rejected", kind="identical")
    # Split where the sides diverge, backed off to the turn start: a side's own last
    # "Assistant:" can sit inside its reply, or the sides may differ before it.
    cut = chosen.rfind(ASSISTANT_MARK, 0, len(os.path.commonprefix([chosen, rejected])))
    if cut < 0:
        raise RecordError("chosen and rejected share no '\\n\\nAssistant:' turn", source=source, field="chosen")
    start = cut + len(ASSISTANT_MARK)
    prompt = transcript(chosen[:cut], source, "chosen")
    # Empty replies are kept: in HH-RLHF an empty turn is a real, labelled reply (silence
    # is the chosen answer to some harmful requests).
    return _pair(record, source, prompt, strip_space(chosen[start:]), strip_space(rejected[start:]))


def _trl_pair(record: dict, source: str) -> PreferencePair:
    chosen = required(record, "chosen", source, (str, list))
    rejected = required(record, "rejected", source, (str, list))
    if record.get("prompt") is not None:
        prompt = _trl_prompt(record["prompt"], source)
    elif isinstance(chosen, list) and isinstance(rejected, list):
        prompt = _shared_prefix(chosen, rejected, source)
    else:
        reason = "without a prompt, chosen and rejected must be message lists"
        raise RecordError(reason, source=source, field="prompt", kind="missing")
    chosen_reply = _trl_reply(chosen, prompt, source, "chosen")
    rejected_reply = _trl_reply(rejected, prompt, source, "rejected")
    return _pair(record, source, with_system_and_tools(prompt, record, source), chosen_reply, rejected_reply)


def _trl_prompt(value: object, source: str) -> Conversation:
    if isinstance(value, str):
        return [turn_message(value)]
    if isinstance(value, list):
        return validate_conversation(value, source=source, field_name="prompt")
    raise RecordError(f"expected str or list, got {type(value).__name__}", source=source, field="prompt", kind="type")


def _shared_prefix(chosen: list, rejected: list, source: str) -> Conversation:
    """The messages both sides start with, always leaving each side its last message."""
    chosen = validate_conversation(chosen, source=source, field_name="chosen")
    rejected = validate_conversation(rejected, source=source, field_name="rejected")
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return chosen[:n]


def _trl_reply(value: str | list, prompt: Conversation, source: str, field: str) -> str | Message:
    """A reply given as text, or as one assistant message (optionally after a copy of the prompt)."""
    if isinstance(value, str):
        return nonempty_reply(value, source, field)
    messages = validate_conversation(value, source=source, field_name=field)
    if len(messages) > len(prompt) and messages[: len(prompt)] == prompt:
        messages = messages[len(prompt) :]
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise RecordError("a reply must be exactly one assistant message after the prompt", source=source, field=field)
    return reply_of(messages[0], source, f"{field}[-1].content")


def _medicalgpt_pair(record: dict, source: str) -> PreferencePair:
    prompt: Conversation = []
    for i, turn in enumerate(optional(record, "history", list, source) or []):
        if not (isinstance(turn, list | tuple) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            reason = "expected a [question, answer] pair of strings"
            raise RecordError(reason, source=source, field=f"history[{i}]", kind="type")
        prompt += [turn_message(turn[0]), reply_message(turn[1])]
    prompt.append(turn_message(required(record, "question", source, str)))
    chosen = nonempty_reply(required(record, "response_chosen", source, str), source, "response_chosen")
    rejected = nonempty_reply(required(record, "response_rejected", source, str), source, "response_rejected")
    return _pair(record, source, with_system_and_tools(prompt, record, source), chosen, rejected)


def _sharegpt_pair(record: dict, source: str) -> PreferencePair:
    prompt = sharegpt_conversation(record, source)
    chosen, rejected = _sharegpt_reply(record, "chosen", source), _sharegpt_reply(record, "rejected", source)
    return _pair(record, source, with_system_and_tools(prompt, record, source), chosen, rejected)


def _sharegpt_reply(record: dict, key: str, source: str) -> str | Message:
    value = required(record, key, source, (str, dict))
    if isinstance(value, dict):
        reply = sharegpt_message(value, source, key)
        if reply["role"] != "assistant":
            reason = f"a reply must come from gpt/assistant or be a function_call, not {value.get('from')!r}"
            raise RecordError(reason, source=source, field=f"{key}.from")
        return reply_of(reply, source, f"{key}.value")
    return nonempty_reply(value, source, key)


def _pair(record: dict, source: str, prompt: Conversation, chosen: str | Message, rejected: str | Message) -> PreferencePair:
    if not prompt or prompt[-1]["role"] not in ANSWERABLE:
        last = prompt[-1]["role"] if prompt else "nothing"
        reason = f"the prompt must end with a user turn or a tool result, not {last}"
        raise RecordError(reason, source=source, field="prompt")
    if chosen == rejected:
        raise RecordError("chosen and rejected are identical", source=source, field="rejected", kind="identical")
    margin = optional(record, "margin", (int, float), source)
    if isinstance(margin, bool):
        raise RecordError("expected a number, got bool", source=source, field="margin", kind="type")
    return PreferencePair(prompt, chosen, rejected, None if margin is None else float(margin), source=source)


_PAIR_PARSERS: dict[str, Callable[[dict, str], PreferencePair]] = {
    "hh_rlhf": _hh_rlhf_pair,
    "trl": _trl_pair,
    "medicalgpt": _medicalgpt_pair,
    "sharegpt": _sharegpt_pair,
}


# ----------------------------------------------------------------------------- prompts


def detect_prompt_format(record: dict, source: str = "") -> str:
    """The prompt format a record's keys show."""
    if "turns" in record:
        return "mt_bench"
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record:
        return "alpaca_eval"
    for key in ("prompt", "text", "chosen"):
        value = record.get(key)
        if isinstance(value, str):
            if TURN_MARK.match(value):
                return "hh_rlhf"
            if key != "chosen":  # a plain "chosen" is a reply, not a prompt
                return "text"
    raise RecordError(
        f"cannot detect the prompt format from keys {sorted(record)}: expected 'turns' (mt_bench), "
        "'messages', 'conversations' (sharegpt), 'instruction' (alpaca_eval), an HH-RLHF transcript in 'chosen'/'prompt'/'text' "
        "(hh_rlhf) or a plain 'prompt'/'text' string (text)",
        source=source,
    )


# Fields of any prompt record that the built-in verifiers read (rmkit.scoring.verifiers).
VERIFIER_FIELDS = ("instruction_id_list", "kwargs", "answer")


def parse_prompt(record: dict, source: str, format: str = "auto") -> Prompt:
    """One record -> a Prompt (id defaults to "FILESTEM-LINE"); raises RecordError."""
    if format != "auto" and format not in PROMPT_FORMATS:
        raise ConfigError(f"unknown prompt format {format!r}: expected auto or one of {', '.join(PROMPT_FORMATS)}")
    fmt = detect_prompt_format(record, source) if format == "auto" else format
    prompt = _PROMPT_PARSERS[fmt](record, source)
    prompt.source = source
    prompt.extra |= {key: record[key] for key in VERIFIER_FIELDS if key in record}
    return prompt


def load_prompts(
    path: str, format: str = "auto", on_error: str = "raise", report: DataReport | None = None, split: str | None = None
) -> list[Prompt]:
    """All prompts in a file, folder, glob or hub dataset (a folder: every file, unless ``split``
    is given); ids must be unique."""
    first_seen: dict[str, str] = {}

    def parse(record: dict, source: str) -> Prompt:
        prompt = parse_prompt(record, source, format)
        if prompt.id in first_seen:
            reason = f"duplicate prompt id {prompt.id!r} (first at {first_seen[prompt.id]})"
            raise RecordError(reason, source=source, field="id")
        first_seen[prompt.id] = source
        return prompt

    return parse_records(path, parse, on_error, report, split)


def _mt_bench_prompt(record: dict, source: str) -> Prompt:
    question_id = required(record, "question_id", source, (int, str))
    turns = required(record, "turns", source, list)
    if not turns or not all(isinstance(turn, str) for turn in turns):
        raise RecordError("expected a non-empty list of strings", source=source, field="turns", kind="type")
    extra = {"question_id": question_id}
    if record.get("reference") is not None:
        extra["reference"] = record["reference"]
    return Prompt(id=str(question_id), turns=turns, category=_category(record, source), extra=extra)


def _messages_prompt(record: dict, source: str) -> Prompt:
    messages = validate_conversation(required(record, "messages", source, list), source=source)
    return _conversation_prompt(record, source, messages, "messages")


def _sharegpt_prompt(record: dict, source: str) -> Prompt:
    return _conversation_prompt(record, source, sharegpt_conversation(record, source), "conversations")


def _conversation_prompt(record: dict, source: str, messages: Conversation, field: str) -> Prompt:
    history, turn = _last_turn(with_system_and_tools(messages, record, source), source, field)
    return Prompt(id=_prompt_id(record, source), turns=[turn], history=history, category=_category(record, source))


def _hh_rlhf_prompt(record: dict, source: str) -> Prompt:
    key = next((k for k in ("prompt", "text", "chosen") if isinstance(record.get(k), str)), None)
    if key is None:
        reason = "expected a transcript string in 'prompt', 'text' or 'chosen'"
        raise RecordError(reason, source=source, field="chosen", kind="missing")
    history, turn = _last_turn(transcript(record[key], source, key), source, key)
    return Prompt(id=_prompt_id(record, source), turns=[turn], history=history, category=_category(record, source))


def _alpaca_eval_prompt(record: dict, source: str) -> Prompt:
    instruction = required(record, "instruction", source, str)
    extra = {"instruction": instruction}
    extra |= {key: record[key] for key in ("input", "dataset") if record.get(key) is not None}
    text = optional(record, "input", str, source)
    turn = f"{instruction}\n\n{text}" if text else instruction
    category = optional(record, "dataset", str, source) or ""
    return Prompt(id=_prompt_id(record, source), turns=[turn], category=category, extra=extra)


def _text_prompt(record: dict, source: str) -> Prompt:
    key = "prompt" if "prompt" in record else "text"
    turn = required(record, key, source, str)
    return Prompt(id=_prompt_id(record, source), turns=[turn], category=_category(record, source))


_PROMPT_PARSERS: dict[str, Callable[[dict, str], Prompt]] = {
    "mt_bench": _mt_bench_prompt,
    "messages": _messages_prompt,
    "sharegpt": _sharegpt_prompt,
    "hh_rlhf": _hh_rlhf_prompt,
    "alpaca_eval": _alpaca_eval_prompt,
    "text": _text_prompt,
}


def _last_turn(messages: Conversation, source: str, field: str) -> tuple[Conversation, str | Message]:
    """(everything before the last user message or tool result, that turn); later assistant
    turns are dropped. A user turn is its text, a tool result the whole message."""
    last = max((i for i, m in enumerate(messages) if m["role"] in ANSWERABLE), default=None)
    if last is None:
        raise RecordError("no user message or tool result to answer", source=source, field=field)
    turn = messages[last]
    return messages[:last], turn["content"] if turn["role"] == "user" else turn


def _prompt_id(record: dict, source: str) -> str:
    if record.get("id") is not None:
        return str(record["id"])
    file, _, location = source.rpartition(":")
    return f"{file_stem(file)}-{location.lstrip('#')}"


def _category(record: dict, source: str) -> str:
    return optional(record, "category", str, source) or ""
