"""Reading a raw record: its fields checked by type, its turns made messages, the whole file parsed.

Shared by the pair and prompt formats (:mod:`rmkit.data.formats`); every check raises a
:class:`RecordError` naming the file, line and field, with the kind ``on_error="skip"`` counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from rmkit.conversation import (
    Conversation,
    Message,
    RecordError,
    check_turn_order,
    message,
    parse_json,
    parse_tool_call,
    parse_tools,
    validate_conversation,
    with_tools,
)
from rmkit.data.data_report import DataReport
from rmkit.data.sources import read_records
from rmkit.errors import ConfigError, DataError

# HH-RLHF transcripts: "\n\nHuman: ...\n\nAssistant: ..." (a bare leading "Human:" is accepted).
TURN_MARK = re.compile(r"(?:^|\n\n)(Human|Assistant):")
TRANSCRIPT_ROLES = {"Human": "user", "Assistant": "assistant"}
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}

T = TypeVar("T")


def parse_records(
    path: str, parse: Callable[[dict, str], T], on_error: str, report: DataReport | None, split: str | None
) -> list[T]:
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


def transcript(text: str, source: str, field: str) -> Conversation:
    """An HH-RLHF transcript -> user/assistant messages (one space after each marker dropped)."""
    parts = TURN_MARK.split(text)
    if parts[0] or len(parts) == 1:
        raise RecordError("a transcript must start with '\\n\\nHuman:'", source=source, field=field)
    messages = [message(TRANSCRIPT_ROLES[role], strip_space(content)) for role, content in zip(parts[1::2], parts[2::2])]
    check_turn_order(messages, source, field, indexed=False)
    return messages


def strip_space(text: str) -> str:
    return text.removeprefix(" ")


def with_system_and_tools(prompt: Conversation, record: dict, source: str) -> Conversation:
    """Put a record's top-level ``system`` string first, and declare its ``tools`` on it."""
    system = optional(record, "system", str, source)
    if system:
        if prompt and prompt[0]["role"] == "system":
            raise RecordError("a 'system' field and a system message both given", source=source, field="system")
        prompt = [message("system", system), *prompt]
    return with_tools(prompt, parse_tools(record.get("tools"), source))


def reply_of(reply: Message, source: str, field: str) -> str | Message:
    """The reply an assistant message holds: its text, or the whole message when it calls tools
    (the inverse of :func:`rmkit.conversation.reply_message`)."""
    return reply if reply.get("tool_calls") else nonempty_reply(reply["content"], source, field)


def nonempty_reply(text: str, source: str, field: str) -> str:
    if not text.strip():
        raise RecordError("the reply is empty", source=source, field=field, kind="empty")
    return text


def required(record: dict, key: str, source: str, types: type | tuple, *, field: str = "") -> object:
    value = optional(record, key, types, source, field=field)
    if value is None:
        raise RecordError("missing", source=source, field=field or key, kind="missing")
    return value


def optional(record: dict, key: str, types: type | tuple, source: str, *, field: str = "") -> object:
    """``record[key]`` checked against ``types``; None when absent or null."""
    value = record.get(key)
    if value is not None and not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        reason = f"expected {names}, got {type(value).__name__}"
        raise RecordError(reason, source=source, field=field or key, kind="type")
    return value


def sharegpt_conversation(record: dict, source: str) -> Conversation:
    turns = required(record, "conversations", source, list)
    messages = [sharegpt_message(turn, source, f"conversations[{i}]") for i, turn in enumerate(turns)]
    return validate_conversation(messages, source=source, field_name="conversations")  # system first, non-empty


def sharegpt_message(turn: object, source: str, field: str) -> Message:
    """One ``{from, value}`` turn; a ``function_call`` value is a JSON call (or a list of them)."""
    if not isinstance(turn, dict):
        reason = f"expected a {{from, value}} object, got {type(turn).__name__}"
        raise RecordError(reason, source=source, field=field, kind="type")
    role = SHAREGPT_ROLES.get(turn.get("from"))
    if role is None:
        reason = f"'from' must be one of {sorted(SHAREGPT_ROLES)}, got {turn.get('from')!r}"
        raise RecordError(reason, source=source, field=f"{field}.from")
    value = required(turn, "value", source, str, field=f"{field}.value")
    if turn["from"] != "function_call":
        return message(role, value)
    calls = parse_json(value, source, f"{field}.value")
    calls = calls if isinstance(calls, list) else [calls]
    calls = [parse_tool_call(call, source, f"{field}.value[{i}]") for i, call in enumerate(calls)]
    return {"role": "assistant", "content": "", "tool_calls": calls}
