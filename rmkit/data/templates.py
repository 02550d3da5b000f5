"""Chat templates: the tokenizer's own, or a named fallback from a small registry.

Shared by training, sampling and scoring, so a conversation renders the same way
everywhere. Registry templates are Jinja strings in the format ``apply_chat_template``
takes, so rendering always goes through the tokenizer.
"""

from __future__ import annotations

from rmkit.conversation import Conversation
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
    """Render a conversation to text with the tokenizer's (already resolved) template."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def stop_strings(tokenizer, template_name: str) -> list[str]:
    """Strings that end an assistant turn: the registry's, else the tokenizer's EOS."""
    if template_name in STOP_STRINGS:
        return list(STOP_STRINGS[template_name])
    return [tokenizer.eos_token] if tokenizer.eos_token else []
