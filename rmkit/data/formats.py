"""Dataset formats -> the conversation types: preference pairs to train on, prompts to sample.

Pair formats: ``hh_rlhf``, ``trl``, ``medicalgpt``, ``sharegpt``. Prompt formats:
``mt_bench``, ``messages``, ``sharegpt``, ``hh_rlhf``, ``alpaca_eval``, ``text`` (also ``.txt``
files, one prompt a line). Tool use is read from TRL / OpenAI messages (``tool_calls``,
``role: tool``) and ShareGPT turns (``function_call``, ``observation``), with the schemas from a
record's ``tools`` field (a list, or a JSON string of one). A bad record raises :class:`RecordError` naming its file, line and
field, with a kind (missing, type, empty, identical, invalid) that ``on_error="skip"``
counts in a :class:`DataReport`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

from rmkit.config import DataConfig
from rmkit.conversation import (
    ANSWERABLE,
    Conversation,
    Message,
    PreferencePair,
    Prompt,
    RecordError,
    message,
    parse_json,
    parse_tool_call,
    parse_tools,
    validate_conversation,
    with_tools,
)
from rmkit.data.report import DataReport
from rmkit.data.sources import file_stem, read_records, split_heldout, subset_of
from rmkit.errors import ConfigError, DataError

PAIR_FORMATS = ("hh_rlhf", "trl", "medicalgpt", "sharegpt")
PROMPT_FORMATS = ("mt_bench", "messages", "sharegpt", "hh_rlhf", "alpaca_eval", "text")

# HH-RLHF transcripts: "\n\nHuman: ...\n\nAssistant: ..." (a bare leading "Human:" is accepted).
ASSISTANT_MARK = "\n\nAssistant:"
TURN_MARK = re.compile(r"(?:^|\n\n)(Human|Assistant):")
TRANSCRIPT_ROLES = {"Human": "user", "Assistant": "assistant"}
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
    "function_call": "assistant", "observation": "tool", "tool": "tool",
}

T = TypeVar("T")


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

    return _load(path, parse, on_error, report, split)


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
    chosen, rejected = _required(record, "chosen", source, str), _required(record, "rejected", source, str)
    if chosen == rejected:
        raise RecordError("chosen and rejected are identical", source=source, field="rejected", kind="identical")
    # Split where the sides diverge, backed off to the turn start: a side's own last
    # "Assistant:" can sit inside its reply, or the sides may differ before it.
    cut = chosen.rfind(ASSISTANT_MARK, 0, len(os.path.commonprefix([chosen, rejected])))
    if cut < 0:
        raise RecordError("chosen and rejected share no '\\n\\nAssistant:' turn", source=source, field="chosen")
    start = cut + len(ASSISTANT_MARK)
    prompt = _transcript(chosen[:cut], source, "chosen")
    # Empty replies are kept: in HH-RLHF an empty turn is a real, labelled reply (silence
    # is the chosen answer to some harmful requests).
    return _pair(record, source, prompt, _strip_space(chosen[start:]), _strip_space(rejected[start:]))


def _trl_pair(record: dict, source: str) -> PreferencePair:
    chosen = _required(record, "chosen", source, (str, list))
    rejected = _required(record, "rejected", source, (str, list))
    if record.get("prompt") is not None:
        prompt = _trl_prompt(record["prompt"], source)
    elif isinstance(chosen, list) and isinstance(rejected, list):
        prompt = _shared_prefix(chosen, rejected, source)
    else:
        reason = "without a prompt, chosen and rejected must be message lists"
        raise RecordError(reason, source=source, field="prompt", kind="missing")
    chosen_reply = _trl_reply(chosen, prompt, source, "chosen")
    rejected_reply = _trl_reply(rejected, prompt, source, "rejected")
    return _pair(record, source, _with_system_and_tools(prompt, record, source), chosen_reply, rejected_reply)


def _trl_prompt(value: object, source: str) -> Conversation:
    if isinstance(value, str):
        return [message("user", value)]
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
        return _reply(value, source, field)
    messages = validate_conversation(value, source=source, field_name=field)
    if len(messages) > len(prompt) and messages[: len(prompt)] == prompt:
        messages = messages[len(prompt) :]
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise RecordError("a reply must be exactly one assistant message after the prompt", source=source, field=field)
    return _reply_message(messages[0], source, f"{field}[-1].content")


def _medicalgpt_pair(record: dict, source: str) -> PreferencePair:
    prompt: Conversation = []
    for i, turn in enumerate(_optional(record, "history", list, source) or []):
        if not (isinstance(turn, list | tuple) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            reason = "expected a [question, answer] pair of strings"
            raise RecordError(reason, source=source, field=f"history[{i}]", kind="type")
        prompt += [message("user", turn[0]), message("assistant", turn[1])]
    prompt.append(message("user", _required(record, "question", source, str)))
    chosen = _reply(_required(record, "response_chosen", source, str), source, "response_chosen")
    rejected = _reply(_required(record, "response_rejected", source, str), source, "response_rejected")
    return _pair(record, source, _with_system_and_tools(prompt, record, source), chosen, rejected)


def _sharegpt_pair(record: dict, source: str) -> PreferencePair:
    prompt = _sharegpt_conversation(record, source)
    chosen, rejected = _sharegpt_reply(record, "chosen", source), _sharegpt_reply(record, "rejected", source)
    return _pair(record, source, _with_system_and_tools(prompt, record, source), chosen, rejected)


def _sharegpt_conversation(record: dict, source: str) -> Conversation:
    turns = _required(record, "conversations", source, list)
    messages = [_sharegpt_message(turn, source, f"conversations[{i}]") for i, turn in enumerate(turns)]
    return validate_conversation(messages, source=source, field_name="conversations")  # system first, non-empty


def _sharegpt_message(turn: object, source: str, field: str) -> Message:
    """One ``{from, value}`` turn; a ``function_call`` value is a JSON call (or a list of them)."""
    if not isinstance(turn, dict):
        reason = f"expected a {{from, value}} object, got {type(turn).__name__}"
        raise RecordError(reason, source=source, field=field, kind="type")
    role = SHAREGPT_ROLES.get(turn.get("from"))
    if role is None:
        reason = f"'from' must be one of {sorted(SHAREGPT_ROLES)}, got {turn.get('from')!r}"
        raise RecordError(reason, source=source, field=f"{field}.from")
    value = _required(turn, "value", source, str, field=f"{field}.value")
    if turn["from"] != "function_call":
        return message(role, value)
    calls = parse_json(value, source, f"{field}.value")
    calls = calls if isinstance(calls, list) else [calls]
    calls = [parse_tool_call(call, source, f"{field}.value[{i}]") for i, call in enumerate(calls)]
    return {"role": "assistant", "content": "", "tool_calls": calls}


def _sharegpt_reply(record: dict, key: str, source: str) -> str | Message:
    value = _required(record, key, source, (str, dict))
    if isinstance(value, dict):
        reply = _sharegpt_message(value, source, key)
        if reply["role"] != "assistant":
            reason = f"a reply must come from gpt/assistant or be a function_call, not {value.get('from')!r}"
            raise RecordError(reason, source=source, field=f"{key}.from")
        return _reply_message(reply, source, f"{key}.value")
    return _reply(value, source, key)


def _pair(record: dict, source: str, prompt: Conversation, chosen: str | Message, rejected: str | Message) -> PreferencePair:
    if not prompt or prompt[-1]["role"] not in ANSWERABLE:
        last = prompt[-1]["role"] if prompt else "nothing"
        reason = f"the prompt must end with a user turn or a tool result, not {last}"
        raise RecordError(reason, source=source, field="prompt")
    if chosen == rejected:
        raise RecordError("chosen and rejected are identical", source=source, field="rejected", kind="identical")
    margin = _optional(record, "margin", (int, float), source)
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


def parse_prompt(record: dict, source: str, format: str = "auto") -> Prompt:
    """One record -> a Prompt (id defaults to "FILESTEM-LINE"); raises RecordError."""
    if format != "auto" and format not in PROMPT_FORMATS:
        raise ConfigError(f"unknown prompt format {format!r}: expected auto or one of {', '.join(PROMPT_FORMATS)}")
    fmt = detect_prompt_format(record, source) if format == "auto" else format
    prompt = _PROMPT_PARSERS[fmt](record, source)
    prompt.source = source
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

    return _load(path, parse, on_error, report, split)


def _mt_bench_prompt(record: dict, source: str) -> Prompt:
    question_id = _required(record, "question_id", source, (int, str))
    turns = _required(record, "turns", source, list)
    if not turns or not all(isinstance(turn, str) for turn in turns):
        raise RecordError("expected a non-empty list of strings", source=source, field="turns", kind="type")
    extra = {"question_id": question_id}
    if record.get("reference") is not None:
        extra["reference"] = record["reference"]
    return Prompt(id=str(question_id), turns=turns, category=_category(record, source), extra=extra)


def _messages_prompt(record: dict, source: str) -> Prompt:
    messages = validate_conversation(_required(record, "messages", source, list), source=source)
    return _conversation_prompt(record, source, messages, "messages")


def _sharegpt_prompt(record: dict, source: str) -> Prompt:
    return _conversation_prompt(record, source, _sharegpt_conversation(record, source), "conversations")


def _conversation_prompt(record: dict, source: str, messages: Conversation, field: str) -> Prompt:
    history, turn = _last_turn(_with_system_and_tools(messages, record, source), source, field)
    return Prompt(id=_prompt_id(record, source), turns=[turn], history=history, category=_category(record, source))


def _hh_rlhf_prompt(record: dict, source: str) -> Prompt:
    key = next((k for k in ("prompt", "text", "chosen") if isinstance(record.get(k), str)), None)
    if key is None:
        reason = "expected a transcript string in 'prompt', 'text' or 'chosen'"
        raise RecordError(reason, source=source, field="chosen", kind="missing")
    history, turn = _last_turn(_transcript(record[key], source, key), source, key)
    return Prompt(id=_prompt_id(record, source), turns=[turn], history=history, category=_category(record, source))


def _alpaca_eval_prompt(record: dict, source: str) -> Prompt:
    instruction = _required(record, "instruction", source, str)
    extra = {"instruction": instruction}
    extra |= {key: record[key] for key in ("input", "dataset") if record.get(key) is not None}
    text = _optional(record, "input", str, source)
    turn = f"{instruction}\n\n{text}" if text else instruction
    category = _optional(record, "dataset", str, source) or ""
    return Prompt(id=_prompt_id(record, source), turns=[turn], category=category, extra=extra)


def _text_prompt(record: dict, source: str) -> Prompt:
    key = "prompt" if "prompt" in record else "text"
    turn = _required(record, key, source, str)
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
    return _optional(record, "category", str, source) or ""


# ----------------------------------------------------------------------------- shared


def _load(path: str, parse: Callable[[dict, str], T], on_error: str, report: DataReport | None, split: str | None) -> list[T]:
    """Parse every record; with on_error="skip" count bad ones (broken lines too) by kind instead of raising."""
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    report = report if report is not None else DataReport()
    items: list[T] = []
    first_error: RecordError | None = None
    errors = "yield" if on_error == "skip" else "raise"
    for record, source in read_records(path, split, errors=errors, files_read=report.files):
        report.read += 1
        try:
            if isinstance(record, RecordError):  # broken JSON, or not an object
                raise record
            items.append(parse(record, source))
        except RecordError as err:
            if on_error == "raise":
                raise
            report.skipped[err.kind] += 1
            first_error = first_error or err
    report.kept += len(items)
    if first_error is not None and not items:  # e.g. a format that detection does not know
        raise DataError(f"no usable records in {path}: every one was skipped; the first: {first_error}")
    return items


def _transcript(text: str, source: str, field: str) -> Conversation:
    """An HH-RLHF transcript -> user/assistant messages (one space after each marker dropped)."""
    parts = TURN_MARK.split(text)
    if parts[0] or len(parts) == 1:
        raise RecordError("a transcript must start with '\\n\\nHuman:'", source=source, field=field)
    return [message(TRANSCRIPT_ROLES[role], _strip_space(content)) for role, content in zip(parts[1::2], parts[2::2])]


def _strip_space(text: str) -> str:
    return text.removeprefix(" ")


def _with_system_and_tools(prompt: Conversation, record: dict, source: str) -> Conversation:
    """Put a record's top-level ``system`` string first, and declare its ``tools`` on it."""
    system = _optional(record, "system", str, source)
    if system:
        if prompt and prompt[0]["role"] == "system":
            raise RecordError("a 'system' field and a system message both given", source=source, field="system")
        prompt = [message("system", system), *prompt]
    return with_tools(prompt, parse_tools(record.get("tools"), source))


def _reply_message(reply: Message, source: str, field: str) -> str | Message:
    """An assistant reply: its text, or the whole message when it calls tools."""
    return reply if reply.get("tool_calls") else _reply(reply["content"], source, field)


def _reply(text: str, source: str, field: str) -> str:
    if not text.strip():
        raise RecordError("the reply is empty", source=source, field=field, kind="empty")
    return text


def _required(record: dict, key: str, source: str, types: type | tuple, *, field: str = "") -> object:
    value = _optional(record, key, types, source, field=field)
    if value is None:
        raise RecordError("missing", source=source, field=field or key, kind="missing")
    return value


def _optional(record: dict, key: str, types: type | tuple, source: str, *, field: str = "") -> object:
    """``record[key]`` checked against ``types``; None when absent or null."""
    value = record.get(key)
    if value is not None and not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        reason = f"expected {names}, got {type(value).__name__}"
        raise RecordError(reason, source=source, field=field or key, kind="type")
    return value
