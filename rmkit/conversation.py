"""The one data shape the toolkit passes around.

A conversation is a list of ``{"role": ..., "content": ...}`` messages (HF / TRL chat
format), with an optional system message first. Every input format is parsed into the
types below once (``rmkit.data.formats``) and every output is written from them once
(``rmkit.exports``); nothing in between sees a raw dataset record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rmkit.errors import RecordError  # noqa: F401  (raised here; imported from here by callers)

Message = dict[str, str]
Conversation = list[Message]

ROLES = ("system", "user", "assistant")


def message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


@dataclass
class PreferencePair:
    """A shared conversation (ending with a user turn) and two candidate replies."""

    prompt: Conversation
    chosen: str
    rejected: str
    margin: float | None = None
    source: str = ""  # "file:line", for error messages and reports
    subset: str = ""  # e.g. the HH-RLHF subset or a file stem, for per-subset eval

    def chosen_conversation(self) -> Conversation:
        return [*self.prompt, message("assistant", self.chosen)]

    def rejected_conversation(self) -> Conversation:
        return [*self.prompt, message("assistant", self.rejected)]


@dataclass
class Prompt:
    """Something to sample replies for.

    ``history`` is fixed context (an optional system message and earlier turns, kept as
    given); each entry of ``turns`` is a user message answered in order, every answer
    seeing the conversation so far (MT-bench has two).
    """

    id: str
    turns: list[str]
    history: Conversation = field(default_factory=list)
    category: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)  # format-specific fields kept for exports


def validate_conversation(messages: object, *, source: str = "", field_name: str = "messages") -> Conversation:
    """Check a message list and return it as plain ``{"role", "content"}`` dicts."""
    if not isinstance(messages, list) or not messages:
        raise RecordError("expected a non-empty list of messages", source=source, field=field_name, kind="invalid")
    out: Conversation = []
    for i, msg in enumerate(messages):
        where = f"{field_name}[{i}]"
        if not isinstance(msg, dict):
            raise RecordError("expected a {role, content} object", source=source, field=where)
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise RecordError(f"role must be one of {ROLES}, got {role!r}", source=source, field=f"{where}.role")
        if not isinstance(content, str):
            raise RecordError("content must be a string", source=source, field=f"{where}.content", kind="missing")
        if role == "system" and i != 0:
            raise RecordError("a system message may only come first", source=source, field=where)
        out.append(message(role, content))
    return out
