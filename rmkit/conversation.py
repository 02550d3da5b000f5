"""The one data shape the toolkit passes around.

A conversation is a list of ``{"role": ..., "content": ...}`` messages (HF / TRL chat
format), with an optional system message first. Every input format is parsed into the
types below once (``rmkit.data.formats``) and every output is written from them once
(``rmkit.selection.exports``); nothing in between sees a raw dataset record.

Tool use takes the HF / OpenAI shapes:

- an assistant message may call tools: ``{"role": "assistant", "content": "", "tool_calls":
  [{"type": "function", "function": {"name": ..., "arguments": {...}}}]}`` (arguments a dict);
- a tool's result is ``{"role": "tool", "content": ..., "name"?: ..., "tool_call_id"?: ...}``;
- the tools a conversation may call (JSON schemas, ``{"type": "function", "function": {...}}``)
  sit on its system message, ``{"role": "system", "content": "", "tools": [...]}`` (content may
  be empty), where chat templates render them. So every path that carries a conversation —
  truncation keeps the system message, candidate files, scoring — carries its tools too;
  ``rmkit.data.templates.render`` hands them to the template's ``tools=`` argument.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rmkit.errors import RecordError  # noqa: F401  (raised here; imported from here by callers)

Message = dict[str, Any]
Conversation = list[Message]

ROLES = ("system", "user", "assistant", "tool")
# Messages a reply answers: a user turn, or a tool's result.
ANSWERABLE = ("user", "tool")


def message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def reply_message(reply: str | Message) -> Message:
    """A reply as an assistant message: plain text, or an assistant message (e.g. with tool calls) as is."""
    return reply if isinstance(reply, dict) else message("assistant", reply)


def message_text(reply: str | Message) -> str:
    """A reply's or message's text, with any tool calls after it as JSON (to measure or show it)."""
    if isinstance(reply, str):
        return reply
    calls = [json.dumps(call["function"], ensure_ascii=False) for call in reply.get("tool_calls", [])]
    return "\n".join([reply["content"], *calls] if reply["content"] else calls)


def tools_of(messages: Conversation) -> list[dict] | None:
    """The tool schemas a conversation declares (on its system message), or None."""
    return messages[0].get("tools") if messages and messages[0]["role"] == "system" else None


def without_tools(messages: Conversation) -> Conversation:
    """The conversation with its tool declaration taken off (a system message left empty by it dropped)."""
    if tools_of(messages) is None:
        return messages
    system = {k: v for k, v in messages[0].items() if k != "tools"}
    return ([system] if system["content"] else []) + messages[1:]


def with_tools(messages: Conversation, tools: list[dict] | None) -> Conversation:
    """Declare ``tools`` on the conversation's system message (an empty one is added if it has none)."""
    if not tools:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "tools": tools}, *messages[1:]]
    return [{"role": "system", "content": "", "tools": tools}, *messages]


@dataclass
class PreferencePair:
    """A shared conversation (ending with a user turn or a tool result) and two candidate replies.

    A reply is text, or an assistant message when it calls tools.
    """

    prompt: Conversation
    chosen: str | Message
    rejected: str | Message
    margin: float | None = None
    source: str = ""  # "file:line", for error messages and reports
    subset: str = ""  # e.g. the HH-RLHF subset or a file stem, for per-subset eval

    def chosen_conversation(self) -> Conversation:
        return [*self.prompt, reply_message(self.chosen)]

    def rejected_conversation(self) -> Conversation:
        return [*self.prompt, reply_message(self.rejected)]


@dataclass
class Prompt:
    """Something to sample replies for.

    ``history`` is fixed context (an optional system message and earlier turns, tool calls
    and results included, kept as given); each entry of ``turns`` is answered in order,
    every answer seeing the conversation so far (MT-bench has two): a user message's text,
    or a tool result message when the conversation ends with one.
    """

    id: str
    turns: list[str | Message]
    history: Conversation = field(default_factory=list)
    category: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)  # format-specific fields kept for exports


def turn_message(turn: str | Message) -> Message:
    """A prompt turn as the message the reply answers: user text, or a tool result as is."""
    return turn if isinstance(turn, dict) else message("user", turn)


def validate_conversation(messages: object, *, source: str = "", field_name: str = "messages") -> Conversation:
    """Check a message list and return it as plain messages: ``{"role", "content"}``, plus
    ``tool_calls`` on an assistant message and ``name`` / ``tool_call_id`` on a tool result."""
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
        calls = msg.get("tool_calls") if role == "assistant" else None
        if content is None and calls:  # OpenAI writes null content beside tool calls
            content = ""
        if not isinstance(content, str):
            raise RecordError("content must be a string", source=source, field=f"{where}.content", kind="missing")
        if role == "system" and i != 0:
            raise RecordError("a system message may only come first", source=source, field=where)
        out.append(message(role, content))
        if calls:
            out[-1]["tool_calls"] = [parse_tool_call(call, source, f"{where}.tool_calls[{k}]") for k, call in enumerate(calls)]
        for key in ("name", "tool_call_id") if role == "tool" else ():
            if isinstance(msg.get(key), str):
                out[-1][key] = msg[key]
    check_turn_order(out, source, field_name)
    return out


def check_turn_order(messages: Conversation, source: str, field_name: str, indexed: bool = True) -> None:
    """Raise :class:`RecordError` (kind "order", which ``on_error: skip`` counts) where a user or an
    assistant turn follows one of its own role: turns alternate (tool results come between an
    assistant's calls and its next reply). ``indexed``: the field is a message list, else one text."""
    for i in range(1, len(messages)):
        role = messages[i]["role"]
        if role in ("user", "assistant") and messages[i - 1]["role"] == role:
            where = f"{field_name}[{i}]" if indexed else field_name
            reason = (
                f"two {role} turns in a row (turns {i} and {i + 1} of {len(messages)}): user and assistant turns must alternate"
            )
            raise RecordError(reason, source=source, field=where, kind="order")


def parse_tool_call(call: object, source: str, where: str) -> dict:
    """A tool call in HF / OpenAI shape (``{"function": {"name", "arguments"}}``, or the bare
    ``{"name", "arguments"}`` of ShareGPT), as ``{"type": "function", "function": {...}}``
    with the arguments a dict (OpenAI gives them as a JSON string)."""
    if isinstance(call, str):
        call = parse_json(call, source, where)
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RecordError("expected a tool call {name, arguments}", source=source, field=where)
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        arguments = parse_json(arguments, source, f"{where}.arguments")
    if not isinstance(arguments, dict):
        raise RecordError("arguments must be an object", source=source, field=f"{where}.arguments", kind="type")
    out = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
    if isinstance(call.get("id"), str):
        out["id"] = call["id"]
    return out


def parse_tools(value: object, source: str, where: str = "tools") -> list[dict] | None:
    """A ``tools`` field (a list of JSON schemas, or that list as a JSON string) as
    ``[{"type": "function", "function": {"name", "description", "parameters"}}]``; None when empty."""
    if isinstance(value, str):
        value = parse_json(value, source, where) if value.strip() else None
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise RecordError(f"expected a list of tool schemas, got {type(value).__name__}", source=source, field=where, kind="type")
    tools = []
    for i, tool in enumerate(value):
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RecordError("expected a tool schema with a name", source=source, field=f"{where}[{i}]")
        tools.append({"type": "function", "function": function})
    return tools


def parse_json(text: str, source: str, where: str) -> Any:
    """JSON text of a record's field, or a RecordError naming the field."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"not valid JSON: {err}", source=source, field=where, kind="type") from None
