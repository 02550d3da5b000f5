"""Load, score with, and save sequence-classification reward models."""

from __future__ import annotations

from pathlib import Path

import torch

from rmkit.config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(cfg: ModelConfig):
    """The tokenizer with a pad token distinct from EOS and the chat template resolved.

    A pad token equal to EOS would make the model read the score one token early (the
    final EOS looks like padding), so such a pad is replaced.
    """
    from transformers import AutoTokenizer

    from rmkit.data.templates import use_template
    from rmkit.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model(cfg.tokenizer or cfg.name_or_path), trust_remote_code=cfg.trust_remote_code
    )
    if cfg.pad_token:
        tokenizer.pad_token = cfg.pad_token
    if tokenizer.pad_token is None or (tokenizer.eos_token and tokenizer.pad_token == tokenizer.eos_token):
        tokenizer.add_special_tokens({"pad_token": "<|rmkit_pad|>"})
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token  # encoders (BERT) end a text with [SEP]
    use_template(tokenizer, cfg.chat_template, cfg.force_chat_template)
    return tokenizer


def compute_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One float32 reward per row, read at the last real token whatever the padding side.

    Positions come from the attention mask, so left padding does not shift them.
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
    return out.logits[:, 0].float()
