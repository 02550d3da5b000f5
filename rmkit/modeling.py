"""Load, score with, and save sequence-classification reward models."""

from __future__ import annotations

from pathlib import Path

import torch

from rmkit.config import ConfigError, LoraConfig, ModelConfig
from rmkit.errors import MissingPath
from rmkit.logs import note
from rmkit.builtin_models import resolve_model

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
    input_ids, attention_mask = _pad_right(input_ids, attention_mask)
    out = model(input_ids=input_ids, attention_mask=attention_mask)
    return out.logits[:, 0].float()


def compute_rewards_in_groups(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, multiple_of: int | None = None, forward_cost: float | None = None
) -> torch.Tensor:
    """:func:`compute_rewards` over forwards of similar-length rows, each cut to its own width.

    Rows are independent, so the rewards are those of one forward over the whole batch;
    only the padding (and its compute) goes. See :func:`rmkit.data.collator.forward_groups`.
    """
    from rmkit.data.collator import forward_groups, padded_width

    input_ids, attention_mask = _pad_right(input_ids, attention_mask)
    lengths = attention_mask.sum(-1).tolist()
    rows, rewards = [], []
    for group in forward_groups(lengths, forward_cost, multiple_of):
        width = padded_width(lengths, group, multiple_of)
        index = torch.tensor(group, device=input_ids.device)
        rewards.append(compute_rewards(model, input_ids[index, :width], attention_mask[index, :width]))
        rows += group
    return torch.cat(rewards)[torch.argsort(torch.tensor(rows, device=input_ids.device))]


def _pad_right(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's leading pads to its end."""
    leading = (attention_mask.cumsum(-1) == 0).sum(-1, keepdim=True)
    if not leading.any():
        return input_ids, attention_mask
    width = input_ids.shape[-1]
    index = (torch.arange(width, device=input_ids.device) + leading) % width
    return input_ids.gather(-1, index), attention_mask.gather(-1, index)


# ----------------------------------------------------------------------------- lengths

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


# ----------------------------------------------------------------------------- loading

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


def _from_pretrained(path: str, tokenizer, dtype: str, trust_remote_code: bool = False, quantization=None):
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


def add_lora(model, lora: LoraConfig, base_name: str, quantized: bool = False, gradient_checkpointing: bool = False):
    """Wrap ``model`` in LoRA adapters; the score head is trained in full and saved with them.

    ``base_name`` is written into the adapter config as the base to reload it on.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
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
    model, new_head = _from_pretrained(resolve_model(cfg.name_or_path), tokenizer, cfg.dtype, cfg.trust_remote_code, quantization)
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


def store_frozen_weights_in(model, dtype: torch.dtype) -> int:
    """Keep the frozen weights of linear layers in ``dtype``, the one autocast computes in.

    Autocast casts a float32 weight to bf16 at every forward and, as the matmul's input,
    keeps that copy for the backward: with frozen LoRA bases, a copy of the whole model per
    forward, and its cost in time. Stored in the autocast dtype, the weight is used as it is:
    the same matmuls, bit for bit, at half the weights' memory. Trainable weights (LoRA, the
    score head, full fine-tuning) stay float32. Returns how many weights were stored so.
    """
    stored = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            for param in (module.weight, module.bias):
                if param is not None and not param.requires_grad and param.dtype == torch.float32:
                    param.data = param.data.to(dtype)
                    stored += 1
    return stored


def activation_bytes_per_token(model) -> int:
    """What training holds for backward per token, estimated at 34·hidden bytes a layer
    (Korthikanti et al. 2022, 16-bit, attention scores not kept, as sdpa does)."""
    config = model.config
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", 0)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    return 34 * hidden * layers


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


# ----------------------------------------------------------------------------- saving


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
    merged = _load_adapter(output_dir / "adapter", tokenizer, dtype, trust_remote_code)
    merged.save_pretrained(output_dir / "model")
    tokenizer.save_pretrained(output_dir / "model")


def _vocabulary_grew(model, trust_remote_code: bool = False) -> bool:
    """Whether a LoRA model has more embedding rows than its base's vocabulary (a pad token was added)."""
    from transformers import AutoConfig

    base = resolve_model(model.peft_config["default"].base_model_name_or_path)
    vocabulary = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code).get_text_config().vocab_size
    return model.get_input_embeddings().num_embeddings > vocabulary


# ----------------------------------------------------------------------------- inference


def _load_adapter(adapter_dir: Path, tokenizer, dtype: str, trust_remote_code: bool = False):
    """Base model + LoRA adapter (+ its score head), merged into a plain transformers model."""
    from peft import PeftConfig, PeftModel
    from transformers.utils import logging as hf_logging

    base = resolve_model(PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path, f"the base model of {adapter_dir}")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score head newly initialized" is expected: the adapter brings it
    try:
        model, _ = _from_pretrained(base, tokenizer, dtype, trust_remote_code)  # the adapter brings the head
    finally:
        hf_logging.set_verbosity(verbosity)
    return PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()


def reward_model_folder(path: str | Path, label: str = "reward model") -> Path:
    """An rmkit output folder's ``model/`` (else ``adapter/``), or ``path`` itself (a short name resolved).

    A local folder that holds neither is refused, naming ``label``.
    """
    path = Path(resolve_model(str(path), label))
    for sub in ("model", "adapter"):
        if (path / sub / "config.json").exists() or (path / sub / "adapter_config.json").exists():
            return path / sub
    if path.is_dir() and not any((path / name).exists() for name in ("config.json", "adapter_config.json")):
        raise MissingPath(f"{label} {path}: not a model folder (no config.json, adapter_config.json, model/ or adapter/ in it)")
    return path


def reward_model_config(
    folder: str, trust_remote_code: bool = False, chat_template: str = "chatml", force_chat_template: bool = False
) -> ModelConfig:
    """The ModelConfig a trained reward model's tokenizer loads with: the one place its template is chosen."""
    return ModelConfig(
        name_or_path=folder,
        trust_remote_code=trust_remote_code,
        chat_template=chat_template,
        force_chat_template=force_chat_template,
    )


def load_trained_reward_model(
    path: str,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    chat_template: str = "chatml",
    force_chat_template: bool = False,
):
    """``(model, tokenizer)`` for scoring, from an rmkit training output or any Hugging Face classifier.

    An rmkit folder carries its tokenizer (chat template, pad token); ``adapter/`` alone is
    loaded on its base model and merged. ``chat_template`` is used when the tokenizer has
    none (or always, with ``force_chat_template``). The model is returned in eval mode.
    """
    folder = reward_model_folder(path)
    tokenizer = load_tokenizer(reward_model_config(str(folder), trust_remote_code, chat_template, force_chat_template))
    if (folder / "adapter_config.json").exists():
        model = _load_adapter(folder, tokenizer, dtype, trust_remote_code)
    else:
        model, new_head = _from_pretrained(str(folder), tokenizer, dtype, trust_remote_code)
        if new_head:
            note(f"{folder} has no trained score head: a new one is initialised at random, so its rewards mean nothing", warning=True)
    return model.eval(), tokenizer
