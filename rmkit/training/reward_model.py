"""The reward model to train, and its outputs: a one-output classifier (LoRA-wrapped, or in full,
4/8-bit on a GPU), saved as ``adapter/`` (LoRA with its score head) and ``model/`` (merged)."""

from __future__ import annotations

from pathlib import Path

import torch

from rmkit.config.sections import LoraConfig, ModelConfig
from rmkit.errors import ConfigError
from rmkit.logs import note
from rmkit.models.builtin import resolve_model
from rmkit.models.classifier import DTYPES, head_name, load_adapter, load_classifier


def _quantization_config(cfg: ModelConfig):
    """bitsandbytes 4/8-bit settings, or None; bitsandbytes needs a CUDA GPU."""
    if not (cfg.load_in_4bit or cfg.load_in_8bit):
        return None
    if cfg.load_in_4bit and cfg.load_in_8bit:
        raise ConfigError("model.load_in_4bit and model.load_in_8bit are exclusive; choose one")
    if not torch.cuda.is_available():
        raise ConfigError("model.load_in_4bit / load_in_8bit need a CUDA GPU (bitsandbytes); this machine has none")
    from transformers import BitsAndBytesConfig

    if cfg.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=DTYPES[cfg.dtype])


def add_lora(model, lora: LoraConfig, base_name: str, quantized: bool = False, gradient_checkpointing: bool = False):
    """Wrap ``model`` in LoRA adapters; the score head is trained in full and saved with them.

    ``base_name`` is written into the adapter config as the base to reload it on.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    config = PeftLoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        # Without this the freshly initialized head stays frozen and is not saved: the classic
        # "reloaded LoRA reward model scores at random" trap.
        modules_to_save=[head_name(model)],
    )
    model = get_peft_model(model, config)
    model.peft_config["default"].base_model_name_or_path = base_name
    return model


def _adapter_base_name(name_or_path: str) -> str:
    """How an adapter names its base: a short name or hub id as given (portable), a local folder absolute."""
    is_local = resolve_model(name_or_path) == name_or_path and Path(name_or_path).is_dir()
    return str(Path(name_or_path).resolve()) if is_local else name_or_path


def build_reward_model(cfg: ModelConfig, lora: LoraConfig | None, tokenizer):
    """The model to train: a one-output classifier, LoRA-wrapped unless ``lora`` is None or disabled."""
    quantization = _quantization_config(cfg)
    model, new_head = load_classifier(resolve_model(cfg.name_or_path), tokenizer, cfg.dtype, cfg.trust_remote_code, quantization)
    if new_head:  # the expected case when training from a causal LM or an encoder
        note(f"new score head initialised on {cfg.name_or_path}")
    model.config.use_cache = False  # no generation; a cache only costs memory in training
    gradient_checkpointing = cfg.gradient_checkpointing is True  # "auto" is decided by the trainer, which knows the batches
    if gradient_checkpointing and quantization is None:
        enable_gradient_checkpointing(model)
    if lora is not None and lora.enabled:
        base_name = _adapter_base_name(cfg.name_or_path)
        model = add_lora(model, lora, base_name, quantization is not None, gradient_checkpointing)
    elif quantization is not None:
        raise ConfigError("a 4/8-bit model can only be trained with LoRA (lora.enabled: true)")
    return model


def enable_gradient_checkpointing(model) -> None:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def is_lora(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_reward_model(
    model,
    tokenizer,
    output_dir: str | Path,
    *,
    state_dict: dict | None = None,
    is_main_process: bool = True,
    merge: bool = True,
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> None:
    """Write ``adapter/`` (LoRA incl. the score head) and ``model/`` (merged), or just ``model/``.

    ``state_dict`` is the full one gathered from a distributed model (``accelerator.get_state_dict``);
    every process must call this then, only the main one writes. The merged model is
    rebuilt from the saved adapter (:func:`merge_adapter`).
    """
    output_dir = Path(output_dir)
    if not is_lora(model):
        model.save_pretrained(output_dir / "model", state_dict=state_dict, is_main_process=is_main_process)
        if is_main_process:
            tokenizer.save_pretrained(output_dir / "model")
        return
    adapter_dir = output_dir / "adapter"
    # An added pad grew the embeddings: the adapter then carries them, as PEFT expects (the
    # base is grown to the adapter's tokenizer before the adapter loads; docs/training.md).
    grown = _vocabulary_grew(model, trust_remote_code)
    model.save_pretrained(adapter_dir, state_dict=state_dict, is_main_process=is_main_process, save_embedding_layers=grown)
    if not is_main_process:
        return
    tokenizer.save_pretrained(adapter_dir)
    if merge:
        merge_adapter(output_dir, tokenizer, dtype, trust_remote_code)


def merge_adapter(output_dir: str | Path, tokenizer, dtype: str = "float32", trust_remote_code: bool = False) -> None:
    """Write ``model/``: the base with ``adapter/`` merged in, rebuilt from the saved adapter
    so that ``model/`` scores exactly as the adapter does."""
    output_dir = Path(output_dir)
    merged = load_adapter(output_dir / "adapter", tokenizer, dtype, trust_remote_code)
    merged.save_pretrained(output_dir / "model")
    tokenizer.save_pretrained(output_dir / "model")


def _vocabulary_grew(model, trust_remote_code: bool = False) -> bool:
    """Whether a LoRA model has more embedding rows than its base's vocabulary (a pad token was added)."""
    from transformers import AutoConfig

    base = resolve_model(model.peft_config["default"].base_model_name_or_path)
    vocabulary = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code).get_text_config().vocab_size
    return model.get_input_embeddings().num_embeddings > vocabulary
