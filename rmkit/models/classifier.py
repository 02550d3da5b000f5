"""Reward models as transformers sees them: one-output sequence classifiers.

Their tokenizer (a pad apart from EOS, the chat template resolved), a classifier loaded from a
causal LM, an encoder or a classifier folder (a new score head where it has none), a LoRA
adapter merged onto its base, and the reward read at the last real token. Training builds on
these (:mod:`rmkit.training.reward_model`), scoring loads with them
(:mod:`rmkit.scoring.reward_models`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from rmkit.config.sections import ModelConfig
from rmkit.models.builtin import resolve_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(cfg: ModelConfig):
    """The tokenizer with a pad token distinct from EOS and the chat template resolved.

    A pad token equal to EOS would make the model read the score one token early (the
    final EOS looks like padding), so such a pad is replaced.
    """
    from transformers import AutoTokenizer

    from rmkit.data.templates import use_template

    label = "model.tokenizer" if cfg.tokenizer else "model.name_or_path"
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model(cfg.tokenizer or cfg.name_or_path, label), trust_remote_code=cfg.trust_remote_code
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

    Left-padded rows are first rotated into right-padded ones: decoders then find their
    last real token and encoders (BERT) pool [CLS] at position 0, with default positions.
    """
    input_ids, attention_mask = pad_right(input_ids, attention_mask)
    out = model(input_ids=input_ids, attention_mask=attention_mask)
    return out.logits[:, 0].float()


def pad_right(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's leading pads to its end."""
    leading = (attention_mask.cumsum(-1) == 0).sum(-1, keepdim=True)
    if not leading.any():
        return input_ids, attention_mask
    width = input_ids.shape[-1]
    index = (torch.arange(width, device=input_ids.device) + leading) % width
    return input_ids.gather(-1, index), attention_mask.gather(-1, index)


# Names transformers gives the score head of a sequence classifier (decoders, encoders).
HEAD_NAMES = ("score", "classifier")


def head_name(model) -> str:
    """The attribute holding the classification head: ``score`` (Llama…) or ``classifier`` (BERT…)."""
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise ValueError(f"{type(model).__name__} has no score head named any of {HEAD_NAMES}")


def fit_to_tokenizer(model, tokenizer) -> None:
    """Grow the embeddings for tokens the tokenizer added (the pad) and set the model's pad id.

    The model finds the last real token by looking for pads, so a batch of more than one
    needs ``config.pad_token_id``. A new pad row is never read: pads are masked out.
    """
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.pad_token_id = tokenizer.pad_token_id


def load_classifier(path: str, tokenizer, dtype: str, trust_remote_code: bool = False, quantization=None):
    """A one-output sequence classifier from a causal-LM, encoder or classifier model, and
    whether its score head is new (the model has none: transformers initialised it)."""
    from transformers import AutoModelForSequenceClassification

    kwargs = {}
    if quantization is not None:
        from accelerate import PartialState

        kwargs = {"quantization_config": quantization, "device_map": {"": PartialState().local_process_index}}
    # problem_type "regression" says the one output is a score, not a class: saved in config.json, it makes
    # vLLM's pooling runner (runner="pooling", /classify) return the raw logit rather than its sigmoid.
    model, loading = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, problem_type="regression", dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
        use_safetensors=True, output_loading_info=True, **kwargs,
    )  # fmt: skip
    fit_to_tokenizer(model, tokenizer)
    head = head_name(model)
    return model, any(key.split(".")[0] == head for key in loading["missing_keys"])


def load_adapter(adapter_dir: Path, tokenizer, dtype: str, trust_remote_code: bool = False):
    """Base model + LoRA adapter (+ its score head), merged into a plain transformers model."""
    from peft import PeftConfig, PeftModel
    from transformers.utils import logging as hf_logging

    base = resolve_model(PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path, f"the base model of {adapter_dir}")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score head newly initialized" is expected: the adapter brings it
    try:
        model, _ = load_classifier(base, tokenizer, dtype, trust_remote_code)  # the adapter brings the head
    finally:
        hf_logging.set_verbosity(verbosity)
    return PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
