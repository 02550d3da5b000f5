"""The most tokens a model reads, and a setting capped at it."""

from __future__ import annotations

from rmkit.logs import note
from rmkit.models.builtin import resolve_model

# Tokenizers without a limit of their own say model_max_length = 1e30 (transformers' VERY_LARGE_INTEGER).
NO_TOKENIZER_LIMIT = 10**9


def length_limit(config, tokenizer=None) -> tuple[int, str] | None:
    """The most tokens a model reads, and what says so; None when nothing does.

    Its config's ``max_position_embeddings`` (``n_positions`` and the like map to it), or the
    tokenizer's ``model_max_length`` when that is lower: RoBERTa has 514 positions of which
    512 are usable, and its tokenizer says 512. An encoder with absolute positions (BERT,
    MiniLM: 512) fails on anything longer; a rotary decoder was not trained on it.
    """
    limits = []
    positions = getattr(config.get_text_config(), "max_position_embeddings", None)
    if positions:
        limits.append((int(positions), "max_position_embeddings"))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < NO_TOKENIZER_LIMIT:
        limits.append((int(tokenizer_limit), "its tokenizer's model_max_length"))
    return min(limits, default=None, key=lambda limit: limit[0])


def fit_length(length: int, config, tokenizer, key: str, model: str) -> int:
    """``length`` (the setting ``key``), capped at what ``model`` reads (:func:`length_limit`).

    Every place that hands a model token sequences calls this once, after loading it: a
    longer setting is capped with one line naming the key, and the run goes on at the cap
    (an encoder given more positions than it has would fail with a traceback; a default
    such as ``score.max_length: 2048`` is then still right for a 512-position model).
    """
    limit = length_limit(config, tokenizer)
    if limit is None or length <= limit[0]:
        return length
    note(f"{key}={length} is more than {model} reads ({limit[1]} {limit[0]}): using {limit[0]}")
    return limit[0]


def model_config(path: str, trust_remote_code: bool = False):
    """A model's transformers config, read from its folder or hub id (no weights loaded)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(resolve_model(path), trust_remote_code=trust_remote_code)
