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
