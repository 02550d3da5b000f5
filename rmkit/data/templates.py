"""Chat templates: the tokenizer's own, or a named fallback from a small registry.

Shared by training, sampling and scoring, so a conversation renders the same way
everywhere. Registry templates are Jinja strings in the format ``apply_chat_template``
takes, so rendering always goes through the tokenizer.

Tool use (see :mod:`rmkit.conversation`) renders through the template's own ``tools=``
argument when the template knows tools (its source handles both ``tools`` and
``tool_calls``, as Qwen2.5's, Llama 3.1's or Hermes' do). Any other template — every registry one —
gets the conversation rewritten first in the Hermes / Qwen2.5 text convention
(:func:`tools_as_text`): the tool schemas appended to the system message inside
``<tools></tools>``, each call as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` in
the assistant's text, and each tool result as a user turn inside ``<tool_response></tool_response>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rmkit.conversation import Conversation, Message, message, tools_of, without_tools
from rmkit.errors import ConfigError

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA_3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
VICUNA = (
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }} {% set rest = messages[1:] %}"
    "{% else %}A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions. {% set rest = messages %}{% endif %}"
    "{% for m in rest %}{% if m['role'] == 'user' %}USER: {{ m['content'] }} "
    "{% else %}ASSISTANT: {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
# Anthropic's HH-RLHF transcript style; what a base model without a chat format reads best.
PLAIN = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}Human: {{ m['content'] }}\n\n"
    "{% else %}Assistant: {{ m['content'] }}\n\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

TEMPLATES: dict[str, str] = {"chatml": CHATML, "llama-3": LLAMA_3, "vicuna": VICUNA, "plain": PLAIN}

# Strings that end an assistant turn in each template; sampling stops on them.
STOP_STRINGS: dict[str, list[str]] = {
    "chatml": ["<|im_end|>"],
    "llama-3": ["<|eot_id|>"],
    "vicuna": ["USER:"],
    "plain": ["\n\nHuman:"],
}


def resolve_template(tokenizer, fallback: str = "chatml", force: bool = False) -> tuple[str, str]:
    """Return ``(name, jinja)`` for the template to use with ``tokenizer``.

    The tokenizer's own template wins unless ``force``; ``name`` is ``"tokenizer"`` then.
    """
    if fallback not in TEMPLATES:
        raise ConfigError(f"unknown chat template {fallback!r}; known: {', '.join(TEMPLATES)}")
    own = getattr(tokenizer, "chat_template", None)
    if own and not force:
        return "tokenizer", own
    return fallback, TEMPLATES[fallback]


def use_template(tokenizer, fallback: str = "chatml", force: bool = False) -> str:
    """Set the resolved template on the tokenizer (so it is saved with it); return its name."""
    name, jinja = resolve_template(tokenizer, fallback, force)
    tokenizer.chat_template = jinja
    return name


def render(tokenizer, messages: Conversation, add_generation_prompt: bool = False) -> str:
    """Render a conversation to text with the tokenizer's (already resolved) template; tools as above."""
    tools = tools_of(messages)
    uses_tools = tools is not None or any(m["role"] == "tool" or m.get("tool_calls") for m in messages)
    if uses_tools and not knows_tools(tokenizer.chat_template):
        messages, tools = tools_as_text(messages), None
    else:
        messages = without_tools(messages)
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt)


def knows_tools(template: str | dict | None) -> bool:
    """Whether a chat template renders tool schemas and tool calls itself."""
    if isinstance(template, dict):  # named templates: transformers picks "tool_use" when given tools
        return "tool_use" in template
    return bool(template) and "tools" in template and "tool_calls" in template


TOOLS_PREAMBLE = (
    "You may call these tools, given as JSON schemas:\n<tools>\n{tools}\n</tools>\n"
    'To call one, write <tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>.'
)


def tools_as_text(messages: Conversation) -> Conversation:
    """The fallback for a template without tools: schemas, calls and results written as text."""
    tools = tools_of(messages)
    out = without_tools(messages)
    if tools:
        preamble = TOOLS_PREAMBLE.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
        if out and out[0]["role"] == "system":
            out = [message("system", f"{out[0]['content']}\n\n{preamble}"), *out[1:]]
        else:
            out = [message("system", preamble), *out]
    return [_tool_turn_as_text(m) for m in out]


def _tool_turn_as_text(msg: Message) -> Message:
    if msg["role"] == "tool":
        return message("user", f"<tool_response>\n{msg['content']}\n</tool_response>")
    if msg.get("tool_calls"):
        calls = [json.dumps(call["function"], ensure_ascii=False) for call in msg["tool_calls"]]
        text = "\n".join(([msg["content"]] if msg["content"] else []) + [f"<tool_call>\n{c}\n</tool_call>" for c in calls])
        return message("assistant", text)
    return msg


def stop_strings(tokenizer, template_name: str) -> list[str]:
    """Strings that end an assistant turn: the registry's, else the tokenizer's EOS."""
    if template_name in STOP_STRINGS:
        return list(STOP_STRINGS[template_name])
    return [tokenizer.eos_token] if tokenizer.eos_token else []


# ----------------------------------------------------------------------------- reading a rendering back

# Probe contents: plain words that no template rewrites (trims, capitalises) and no text holds.
PROBES = {
    "system": "rmkitprobesystem",
    "user": ("rmkitprobeuserone", "rmkitprobeusertwo"),
    "assistant": ("rmkitprobereplyone", "rmkitprobereplytwo"),
}


@dataclass(frozen=True)
class TemplateShape:
    """What a chat template writes around the messages of a conversation of alternating user and
    assistant turns, read off renderings of probe conversations (:func:`template_shape`)."""

    start: str  # before the first user message when there is no system message (any default system prompt included)
    system_start: str | None  # before a system message; None: the template drops system messages
    system_end: str  # between the system message and the first user message
    user_end: str  # between a user message and the reply to it
    prompt_end: str  # what the generation prompt writes after the last user message: user_end or its start ("ASSISTANT:")
    assistant_end: str  # between a reply and the next user message
    final_end: str  # after the last reply
    eos: str | None  # the tokenizer's end of sequence, which a generated reply ends with instead of final_end
    bos: str | None  # the tokenizer's start of sequence, which clients may leave off (verl does)
    pad: str | None  # a pad token distinct from EOS, which a decoded batch may carry on either side


def _between(text: str, probes: list[str]) -> list[str]:
    """The pieces of ``text`` before, between and after ``probes``, each found once and in order; ValueError if not."""
    pieces, rest = [], text
    for probe in probes:
        if rest.count(probe) != 1:
            raise ValueError(f"the template does not write {probe!r} once")
        before, rest = rest.split(probe)
        pieces.append(before)
    return [*pieces, rest]


def template_shape(tokenizer) -> TemplateShape:
    """The shape of the tokenizer's (resolved) chat template; ConfigError when it renders
    alternating turns in a way that cannot be read back (turns that differ by position)."""
    (u1, u2), (a1, a2), s = PROBES["user"], PROBES["assistant"], PROBES["system"]
    turns = [message("user", u1), message("assistant", a1), message("user", u2), message("assistant", a2)]
    try:
        start, user_end, assistant_end, user_end_2, final_end = _between(render(tokenizer, turns), [u1, a1, u2, a2])
        prompt = render(tokenizer, turns[:1], add_generation_prompt=True)
    except Exception as err:  # a template that raises on plain alternating turns
        raise ConfigError(f"the chat template cannot be read back: {err}") from None
    prompt_end = prompt.removeprefix(start + u1)
    if user_end_2 != user_end or not prompt.startswith(start + u1) or not user_end.startswith(prompt_end):
        raise ConfigError("the chat template cannot be read back: it writes the same turn differently by position")
    try:
        system_start, system_end, _ = _between(render(tokenizer, [message("system", s), *turns[:2]]), [s, u1])
    except Exception:  # a template that drops or refuses a system message
        system_start, system_end = None, ""
    pad = tokenizer.pad_token if tokenizer.pad_token and tokenizer.pad_token != tokenizer.eos_token else None
    return TemplateShape(
        start, system_start, system_end, user_end, prompt_end, assistant_end, final_end,
        tokenizer.eos_token, tokenizer.bos_token, pad,
    )  # fmt: skip


def parse_rendered(shape: TemplateShape, text: str) -> Conversation:
    """The conversation that ``text`` is a rendering of: an optional system message, then user
    messages and replies in turn, ending with a reply. The reply may end with the template's end
    of turn, with the EOS that generation stopped on, or with nothing (cut by a length limit);
    pad tokens around the text and a left-off BOS are allowed. ValueError says where the text
    leaves the template."""
    if shape.pad:
        while text.startswith(shape.pad):
            text = text[len(shape.pad) :]
        while text.endswith(shape.pad):
            text = text[: -len(shape.pad)]
    if shape.bos and shape.start.startswith(shape.bos) and not text.startswith(shape.bos):
        text = shape.bos + text
    messages: Conversation = []
    if text.startswith(shape.start):
        at = len(shape.start)
    elif shape.system_start is not None and text.startswith(shape.system_start):
        end = text.find(shape.system_end, len(shape.system_start))
        if end < 0:
            raise ValueError(f"the system message does not end with {shape.system_end!r}")
        messages.append(message("system", text[len(shape.system_start) : end]))
        at = end + len(shape.system_end)
    else:
        raise ValueError(f"it does not start as the chat template starts a conversation ({shape.start[:40]!r})")
    role = "user"
    while True:
        end_of_turn = shape.user_end if role == "user" else shape.assistant_end
        end = text.find(end_of_turn, at)
        if end < 0 and role == "user" and shape.prompt_end != shape.user_end:  # the last user turn, then a generated reply
            end_of_turn = shape.prompt_end
            end = text.find(end_of_turn, at)
        if end < 0:
            break
        messages.append(message(role, text[at:end]))
        at, role = end + len(end_of_turn), "assistant" if role == "user" else "user"
    if role != "assistant":
        raise ValueError(f"it does not end with a reply: no {shape.prompt_end!r} after the last user message")
    reply = text[at:]
    for end in (shape.final_end, shape.eos):
        if end and reply.endswith(end):
            reply = reply[: -len(end)]
            break
    return [*messages, message("assistant", reply)]
