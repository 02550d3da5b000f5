"""The training sections of a recipe: the reward model (model, data, lora, train) and the
policy's fine-tuning (sft). See :mod:`rmkit.config.sections`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rmkit.config.fields import check_range, setting
from rmkit.errors import ConfigError


@dataclass
class ModelConfig:
    """``rmkit train``: the model the reward model is built on."""

    name_or_path: str = setting(
        "smollm2-135m",
        "the model to build on: a folder, a hub id or a built-in short name (`rmkit models`); "
        "a causal LM or an encoder gets a new one-output score head",
    )
    tokenizer: str | None = setting(None, "the tokenizer's folder or hub id; unset: name_or_path's")
    dtype: Literal["float32", "bfloat16", "float16"] = setting(
        "float32", "dtype the weights are loaded in (float32 master weights; autocast is train.mixed_precision)"
    )
    chat_template: str = setting(
        "chatml", "template (chatml, llama-3, vicuna, plain) conversations are rendered with when the tokenizer has none"
    )
    force_chat_template: bool = setting(False, "use chat_template even when the tokenizer has a template of its own")
    pad_token: str | None = setting(
        None,
        'pad token, e.g. "<|endoftext|>"; unset: the tokenizer\'s, or a new one where it has none or pads with EOS '
        "(the reward is read at the last token before the pads)",
    )
    trust_remote_code: bool = setting(
        False,
        "run Python code that comes with the model (transformers' trust_remote_code): only for models you trust",
        neutral=True,
    )
    gradient_checkpointing: bool | Literal["auto"] = setting(
        "auto",
        "recompute activations in the backward (less memory, about a third more compute); "
        "auto: on when one backward's activations would outweigh the weights",
        neutral=True,
    )
    load_in_4bit: bool = setting(False, "load the frozen base in 4 bits (bitsandbytes NF4; CUDA GPU and LoRA only)")
    load_in_8bit: bool = setting(False, "load the frozen base in 8 bits (bitsandbytes; CUDA GPU and LoRA only)")


@dataclass
class DataConfig:
    """``rmkit train``: the preference pairs, their held-out split and how they are encoded."""

    path: str = setting("", "preference pairs: a file (.jsonl, .json, .parquet, .gz), a folder, a glob, or a datasets hub id")
    split: str = setting("train", "the split to read: of a hub dataset, or of a folder's files by name")
    format: Literal["auto", "hh_rlhf", "trl", "medicalgpt", "sharegpt"] = setting(
        "auto", "the pairs' format; auto: each record's keys tell it"
    )
    eval_path: str | None = setting(
        None, "held-out pairs of their own (file, folder, glob or hub id); unset: eval_fraction of path"
    )
    eval_fraction: float = setting(0.05, "share of path's pairs held out for evaluation, when eval_path is unset")
    seed: int = setting(42, "seed of the held-out split")
    max_length: int = setting(
        512,
        "tokens per conversation (prompt + reply); a longer prompt loses its oldest turns first; "
        "capped at what the model reads (max_position_embeddings)",
    )
    max_examples: int | None = setting(None, "cap on parsed pairs (train and held-out each, after the split), for quick runs")
    on_error: Literal["raise", "skip"] = setting(
        "raise", "a bad record: raise stops at it (file, line and field); skip leaves it out and counts it", neutral=True
    )

    def __post_init__(self):
        check_range("data", self, "in [0, 1)", "eval_fraction")
        check_range("data", self, "at least 1", "max_length", "max_examples")


@dataclass
class LoraConfig:
    """``rmkit train`` and ``rmkit sft``: the LoRA adapters (the score head is trained in full)."""

    enabled: bool = setting(True, "train LoRA adapters and the score head; false: fine-tune every weight")
    r: int = setting(16, "rank of the LoRA matrices")
    alpha: int = setting(32, "LoRA's scale numerator: an adapter's update is scaled by alpha / r")
    dropout: float = setting(
        0.0, "dropout on the adapters' input; it doubles a CPU step (measured: 15 s vs 7.5 s) for little gain in a short run"
    )
    target_modules: list[str] | str = setting("all-linear", "the layers that get adapters: a list of module names, or all-linear")

    def __post_init__(self):
        check_range("lora", self, "at least 1", "r")
        check_range("lora", self, "above 0", "alpha")
        check_range("lora", self, "in [0, 1)", "dropout")


@dataclass
class TrainConfig:
    """``rmkit train``: the optimisation, checkpoints and outputs."""

    output_dir: str = setting(
        "outputs/reward_model",
        "the output folder: adapter/, model/, metrics.jsonl, summary.json, checkpoints/, report/",
        neutral=True,
    )
    per_device_batch_size: int = setting(8, "pairs per micro-batch on each process")
    eval_batch_size: int = setting(16, "pairs per forward in held-out evaluation, on each process", neutral=True)
    gradient_accumulation_steps: int = setting(1, "micro-batches whose gradients make one optimizer step")
    learning_rate: float = setting(1e-4, "AdamW's learning rate after warmup")
    weight_decay: float = setting(0.0, "AdamW's decoupled weight decay")
    warmup_ratio: float = setting(0.05, "share of the steps over which the learning rate rises from 0")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = setting(
        "linear", "how the learning rate changes after warmup (transformers' get_scheduler)"
    )
    num_epochs: float = setting(1.0, "passes over the training pairs (a fraction stops early)")
    max_steps: int | None = setting(None, "optimizer steps to take; set, it overrides num_epochs")
    max_grad_norm: float = setting(1.0, "gradients are clipped to this norm; 0: not clipped")
    mixed_precision: Literal["no", "bf16", "fp16"] = setting(
        "no", "autocast dtype of forward and backward (Accelerate's); bf16 and fp16 also store frozen weights in it"
    )
    center_rewards_coefficient: float | None = setting(
        None, "adds this times the mean squared reward to the loss (TRL's pull towards zero-mean rewards); unset: off"
    )
    group_by_length: bool = setting(True, "batches of pairs of similar length (less padding); false: plain random batches")
    tokens_per_backward: int | Literal["auto"] | None = setting(
        "auto",
        "a batch's pairs are backpropagated in runs of at most this many tokens, one after another (same gradients, "
        "one run's activations held); auto: activations about the weights' size; null: the whole batch at once",
        neutral=True,
    )
    pad_to_multiple_of: int | None = setting(
        None, "pad a batch's width to a multiple of this (e.g. 8 for tensor cores); unset: to its longest", neutral=True
    )
    eval_steps: int | None = setting(
        None, "evaluate on the held-out pairs every this many steps; unset: only at the end", neutral=True
    )
    save_steps: int | None = setting(
        None, "save a checkpoint every this many steps, which a rerun resumes from; unset: none", neutral=True
    )
    save_total_limit: int = setting(2, "checkpoints kept, the oldest deleted first; 0: keep every one", neutral=True)
    resume: Literal["auto", "never"] | str = setting(
        "auto",
        "auto: go on from output_dir's latest checkpoint; never: refuse a folder with checkpoints; or a checkpoint's path",
        neutral=True,
    )
    logging_steps: int = setting(10, "write the mean loss to metrics.jsonl every this many steps", neutral=True)
    report_to: list[str] = setting(
        [], "trackers that get the metrics too, e.g. [tensorboard] or [wandb] (Accelerate's log_with)", neutral=True
    )
    seed: int = setting(42, "seed of the new weights, the batch order and dropout")
    merge: bool = setting(
        True, "also write model/: the adapter merged into its base, which plain transformers and vLLM load", neutral=True
    )

    def __post_init__(self):
        counts = (
            "per_device_batch_size",
            "eval_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
        )  # each divides something
        check_range("train", self, "at least 1", *counts, "max_steps", "eval_steps", "save_steps", "pad_to_multiple_of")
        if isinstance(self.tokens_per_backward, int) and self.tokens_per_backward < 1:
            raise ConfigError(f"train.tokens_per_backward must be at least 1, auto or null, got {self.tokens_per_backward}")
        check_range("train", self, "above 0", "learning_rate", "num_epochs")
        check_range(
            "train", self, "at least 0", "weight_decay", "max_grad_norm", "center_rewards_coefficient", "save_total_limit"
        )
        check_range("train", self, "in [0, 1]", "warmup_ratio")


# FastChat's MT-bench sampling temperatures by category (fastchat/llm_judge/common.py).


@dataclass
class SftConfig:
    """``rmkit sft``: supervised fine-tuning of the policy on a run's sft.jsonl (TRL's SFTTrainer)."""

    data: str = setting("", "an sft.jsonl or a run folder; unset: the run named on the command line, or sample.output_dir")
    policy: str = setting("", "the model to fine-tune; unset: sample.policy")
    output_dir: str = setting("outputs/sft", "where the merged model goes (a folder sample.policy accepts)")
    use_lora: bool = setting(True, "LoRA with the lora section's settings, merged at the end; false: full fine-tuning")
    max_length: int = setting(1024, "tokens per conversation; longer ones are cut at the end (TRL's truncation)")
    per_device_batch_size: int = setting(8, "conversations per micro-batch on each device")
    gradient_accumulation_steps: int = setting(1, "micro-batches whose gradients make one optimizer step")
    learning_rate: float = setting(1e-4, "AdamW's learning rate after warmup")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = setting(
        "linear", "how the learning rate changes after warmup"
    )
    warmup_ratio: float = setting(0.05, "share of the steps over which the learning rate rises from 0")
    num_epochs: float = setting(1.0, "passes over the data (a fraction stops early)")
    max_steps: int | None = setting(None, "optimizer steps to take; set, it overrides num_epochs")
    mixed_precision: Literal["no", "bf16", "fp16"] = setting(
        "no", "autocast dtype of forward and backward, as train.mixed_precision (bf16: a GPU or a recent CPU)"
    )
    gradient_checkpointing: bool = setting(
        True, "recompute activations in the backward: less memory, about a third more compute (TRL's default)"
    )
    logging_steps: int = setting(10, "log the training loss every this many steps")
    seed: int = setting(42, "seed of the new weights, the data order and dropout")

    def __post_init__(self):
        counts = ("max_length", "per_device_batch_size", "gradient_accumulation_steps", "max_steps", "logging_steps")
        check_range("sft", self, "at least 1", *counts)
        check_range("sft", self, "above 0", "learning_rate", "num_epochs")
        check_range("sft", self, "in [0, 1]", "warmup_ratio")
