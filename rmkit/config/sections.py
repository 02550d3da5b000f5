"""The recipe's sections: one dataclass per stage, each with its keys' defaults, their help and
its own checks.

Every entry point reads the same :class:`Recipe`; each uses the sections it owns
(``rmkit train``: model, data, lora, train; ``rmkit sample-and-score``: sample, score,
select; ``rmkit serve``: score, serve). :mod:`rmkit.config.recipe` reads one from YAML. Each key
is a :func:`~rmkit.config.fields.setting`: its help is what ``rmkit config show`` and the verbs'
flags print, and ``neutral=True`` marks a key that changes speed, memory, logging or where
outputs go but no result, so a run resumes across a change of it
(:mod:`rmkit.config.fingerprint`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from rmkit.config.fields import check_range, setting
from rmkit.errors import ConfigError


@dataclass
class ModelConfig:
    """``rmkit train``: the model the reward model is built on."""

    name_or_path: str = setting(
        "smollm2-135m", "the model to build on: a folder, a hub id or a built-in short name (`rmkit models`); "
        "a causal LM or an encoder gets a new one-output score head",
    )
    tokenizer: str | None = setting(None, "the tokenizer's folder or hub id; unset: name_or_path's")
    dtype: Literal["float32", "bfloat16", "float16"] = setting(
        "float32", "dtype the weights are loaded in (float32 master weights; autocast is train.mixed_precision)"
    )
    chat_template: str = setting("chatml", "template (chatml, llama-3, vicuna, plain) conversations are rendered with when the tokenizer has none")
    force_chat_template: bool = setting(False, "use chat_template even when the tokenizer has a template of its own")
    pad_token: str | None = setting(
        None, 'pad token, e.g. "<|endoftext|>"; unset: the tokenizer\'s, or a new one where it has none or pads with EOS '
        "(the reward is read at the last token before the pads)",
    )
    trust_remote_code: bool = setting(False, "run Python code that comes with the model (transformers' trust_remote_code): only for models you trust", neutral=True)
    gradient_checkpointing: bool | Literal["auto"] = setting(
        "auto", "recompute activations in the backward (less memory, about a third more compute); "
        "auto: on when one backward's activations would outweigh the weights", neutral=True,
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
    eval_path: str | None = setting(None, "held-out pairs of their own (file, folder, glob or hub id); unset: eval_fraction of path")
    eval_fraction: float = setting(0.05, "share of path's pairs held out for evaluation, when eval_path is unset")
    seed: int = setting(42, "seed of the held-out split")
    max_length: int = setting(
        512, "tokens per conversation (prompt + reply); a longer prompt loses its oldest turns first; "
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
        "outputs/reward_model", "the output folder: adapter/, model/, metrics.jsonl, summary.json, checkpoints/, report/", neutral=True
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
        "auto", "a batch's pairs are backpropagated in runs of at most this many tokens, one after another (same gradients, "
        "one run's activations held); auto: activations about the weights' size; null: the whole batch at once", neutral=True,
    )
    pad_to_multiple_of: int | None = setting(None, "pad a batch's width to a multiple of this (e.g. 8 for tensor cores); unset: to its longest", neutral=True)
    eval_steps: int | None = setting(None, "evaluate on the held-out pairs every this many steps; unset: only at the end", neutral=True)
    save_steps: int | None = setting(None, "save a checkpoint every this many steps, which a rerun resumes from; unset: none", neutral=True)
    save_total_limit: int = setting(2, "checkpoints kept, the oldest deleted first; 0: keep every one", neutral=True)
    resume: Literal["auto", "never"] | str = setting(
        "auto", "auto: go on from output_dir's latest checkpoint; never: refuse a folder with checkpoints; or a checkpoint's path",
        neutral=True,
    )
    logging_steps: int = setting(10, "write the mean loss to metrics.jsonl every this many steps", neutral=True)
    report_to: list[str] = setting([], "trackers that get the metrics too, e.g. [tensorboard] or [wandb] (Accelerate's log_with)", neutral=True)
    seed: int = setting(42, "seed of the new weights, the batch order and dropout")
    merge: bool = setting(True, "also write model/: the adapter merged into its base, which plain transformers and vLLM load", neutral=True)

    def __post_init__(self):
        counts = ("per_device_batch_size", "eval_batch_size", "gradient_accumulation_steps", "logging_steps")  # each divides something
        check_range("train", self, "at least 1", *counts, "max_steps", "eval_steps", "save_steps", "pad_to_multiple_of")
        if isinstance(self.tokens_per_backward, int) and self.tokens_per_backward < 1:
            raise ConfigError(f"train.tokens_per_backward must be at least 1, auto or null, got {self.tokens_per_backward}")
        check_range("train", self, "above 0", "learning_rate", "num_epochs")
        check_range("train", self, "at least 0", "weight_decay", "max_grad_norm", "center_rewards_coefficient", "save_total_limit")
        check_range("train", self, "in [0, 1]", "warmup_ratio")


# FastChat's MT-bench sampling temperatures by category (fastchat/llm_judge/common.py).
CATEGORY_TEMPERATURES: dict[str, dict[str, float]] = {
    "mt_bench": {
        "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
        "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1,
    },
}


@dataclass
class SampleConfig:
    """``rmkit sample``: prompts → N candidates per prompt from a policy model."""

    prompts: str = setting("", "the prompts: a file, folder or glob (rmkit.data.formats.load_prompts)")
    prompts_format: Literal["auto", "mt_bench", "messages", "sharegpt", "hh_rlhf", "alpaca_eval", "text"] = setting(
        "auto", "the prompt records' format; auto: each record's keys tell it"
    )
    on_error: Literal["raise", "skip"] = setting("raise", "a bad prompt record: raise stops at it; skip leaves it out and counts it")
    max_prompts: int | None = setting(None, "only the first this many prompts, for quick runs")
    policy: str = setting("smollm2-135m-instruct", "the model that writes the candidates: a folder, hub id or built-in short name (`rmkit models`)")
    tokenizer: str | None = setting(None, "the policy's tokenizer folder or hub id; unset: the policy's own")
    chat_template: str = setting("chatml", "template (chatml, llama-3, vicuna, plain) prompts are rendered with when the policy's tokenizer has none")
    force_chat_template: bool = setting(False, "use chat_template even when the policy's tokenizer has a template of its own")
    backend: Literal["vllm", "transformers"] = setting("vllm", "the generation engine: vllm (batched, CPU or GPU) or transformers (model.generate)")
    n: int = setting(4, "candidates per prompt")
    per_turn: Literal["independent", "best"] = setting(
        "independent",
        "a multi-turn prompt: independent, each candidate its own conversation; "
        "best, every turn continues from its best-scored reply",
    )
    temperature: float = setting(0.7, "sampling temperature; 0: greedy")
    category_temperature: dict[str, float] | str | None = setting(
        None, "temperature by prompt category, over temperature: a mapping, or a preset name (mt_bench: FastChat's)"
    )
    top_p: float = setting(1.0, "sample from the likeliest tokens that together reach this probability; 1: off")
    top_k: int = setting(0, "sample from the k likeliest tokens only; 0: off")
    min_p: float = setting(0.0, "leave out tokens less likely than this times the likeliest one; 0: off")
    max_tokens: int = setting(512, "most tokens generated per reply")
    repetition_penalty: float = setting(1.0, "above 1 makes tokens already in the prompt or reply less likely; 1: off")
    presence_penalty: float = setting(0.0, "lowers the logit of every token already generated (negative: raises); 0: off")
    frequency_penalty: float = setting(0.0, "lowers a token's logit by this for each time it was generated; 0: off")
    stop: list[str] = setting([], "strings that end a reply, besides the chat template's own end")
    stop_token_ids: list[int] = setting([], "token ids that end a reply, besides EOS and the template's end token")
    seed: int = setting(0, "seed of sampling: each request's seed comes from it and the prompt's id, so resumed or sharded runs sample the same")
    chunk_size: int = setting(64, "prompts per generation batch; an interruption loses at most one chunk", neutral=True)
    executor: Literal["local", "ray"] = setting(
        "local", 'where chunks are sampled: local, or ray (Ray workers; pip install "rmkit[ray]"; --ray-address)', neutral=True
    )
    workers: int | None = setting(
        None, "Ray workers; unset: one per tensor_parallel_size GPUs of the cluster, one per node without GPUs", neutral=True
    )
    batch_size: int = setting(16, "sequences per generate() call (transformers backend)", neutral=True)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting("auto", "dtype of the policy's weights; auto: the model's own")
    max_model_len: int | None = setting(
        None, "most tokens of prompt and reply (a longer prompt loses its oldest turns first); unset: the model's own limit"
    )
    tensor_parallel_size: int = setting(1, "GPUs one vLLM engine splits the policy across", neutral=True)
    data_parallel_size: int = setting(
        1, "1: for more replicas use sample.executor=ray, or one process each with --shard i/n, then `rmkit merge`", neutral=True
    )
    gpu_memory_utilization: float = setting(
        0.5,
        "vLLM's share of GPU memory, leaving room for the reward model; "
        "on CPU the KV cache is sized from need (rmkit.models.kv_cache)",
        neutral=True,
    )
    enforce_eager: bool = setting(False, "vLLM without CUDA graphs: slower, but starts sooner and needs less memory", neutral=True)
    output_dir: str = setting("runs/sample", "the run folder (--output overrides)", neutral=True)

    def __post_init__(self):
        counts = ("n", "max_prompts", "max_tokens", "chunk_size", "workers", "batch_size", "max_model_len")
        check_range("sample", self, "at least 1", *counts, "tensor_parallel_size", "data_parallel_size")
        check_range("sample", self, "at least 0", "temperature", "top_k")
        check_range("sample", self, "in (0, 1]", "top_p", "gpu_memory_utilization")
        check_range("sample", self, "in [0, 1]", "min_p")
        check_range("sample", self, "above 0", "repetition_penalty")
        check_range("sample", self, "in [-2, 2]", "presence_penalty", "frequency_penalty")
        if isinstance(self.category_temperature, dict):
            for category, value in self.category_temperature.items():
                if not value >= 0:
                    raise ConfigError(f"sample.category_temperature.{category} must be at least 0, got {value}")
        elif isinstance(self.category_temperature, str) and self.category_temperature not in CATEGORY_TEMPERATURES:
            raise ConfigError(
                f"sample.category_temperature: unknown preset {self.category_temperature!r}; "
                f"known: {', '.join(CATEGORY_TEMPERATURES)}"
            )
        if self.data_parallel_size > 1:  # vLLM's offline engine refuses data parallelism in one process
            raise ConfigError(
                "sample.data_parallel_size > 1: use sample.executor=ray (one worker per tensor_parallel_size GPUs), "
                "or run one process per replica, each with --shard i/n (and CUDA_VISIBLE_DEVICES set to its GPUs), "
                "then join the folders with `rmkit merge`"
            )


@dataclass
class ScorerSpec:
    """One entry of ``score.scorers``: set exactly one of reward_model, verifier, function."""

    name: str = setting("", "its column in candidates.jsonl (scores.NAME) and stats.json")
    weight: float = setting(1.0, "selection ranks by the weighted sum of all scorers; 0: recorded only")
    reward_model: str = setting("", "a reward model folder, scored with the score section's settings")
    verifier: Literal["", "ifeval", "ifeval_loose", "math", "ifbench"] = setting("", "a built-in check (rmkit.scoring.verifiers)")
    function: str = setting("", '"module:function", called with (prompt record, messages), returning a float')


@dataclass
class ScoreConfig:
    """``rmkit score``: candidates → rewards from reward models, verifiers and Python functions."""

    reward_model: str = setting("", "an rmkit training output (merged, or adapter + base) or a Hugging Face classifier")
    scorers: list[ScorerSpec] = setting([], "several scorers, each with a name and a weight; unset: reward_model alone")
    verifier_workers: int = setting(2, "processes for the built-in verifiers; 0: in the main process", neutral=True)
    dtype: Literal["float32", "bfloat16", "float16"] = setting("float32", "dtype of the reward model's weights")
    chat_template: str = setting("chatml", "template (chatml, llama-3, vicuna, plain) used when the reward model's tokenizer has none")
    force_chat_template: bool = setting(False, "use chat_template even when the reward model's tokenizer has one")
    max_length: int = setting(
        2048, "tokens per scored conversation; oldest turns are dropped first; capped at what the reward model reads"
    )
    batch_size: int = setting(8, "conversations per forward pass", neutral=True)
    backend: Literal["transformers", "vllm"] = setting("transformers", "the scoring engine: transformers, or vllm's pooling runner (GPU)")
    gpu_memory_utilization: float = setting(
        0.3, "vllm backend: its share of GPU memory (on CPU the KV cache is sized from need)", neutral=True
    )
    enforce_eager: bool = setting(False, "vllm backend without CUDA graphs: slower, but starts sooner", neutral=True)

    def __post_init__(self):
        check_range("score", self, "at least 1", "max_length", "batch_size")
        check_range("score", self, "at least 0", "verifier_workers")
        check_range("score", self, "in (0, 1]", "gpu_memory_utilization")
        names = set()
        for i, spec in enumerate(self.scorers):
            where = f"score.scorers[{i}]"
            if not spec.name:
                raise ConfigError(f"{where}.name is not set")
            if spec.name in names:
                raise ConfigError(f"{where}.name: {spec.name!r} is used twice")
            names.add(spec.name)
            if sum(map(bool, (spec.reward_model, spec.verifier, spec.function))) != 1:
                raise ConfigError(f"{where} ({spec.name}): set exactly one of reward_model, verifier, function")


@dataclass
class SelectConfig:
    """``rmkit select``: scored candidates → SFT data, DPO pairs, exports and stats."""

    top_k: int = setting(1, "conversations per prompt written to sft.jsonl (1: best-of-N)")
    keep_ties: bool = setting(
        False, "also keep every further distinct candidate that ties the best reward (ReST-EM: all correct answers)"
    )
    pick: Literal["best", "random"] = setting(
        "best", "random: the control arm, as many seeded random candidates per prompt as best would keep, from the same prompts"
    )
    pairs: bool = setting(True, "write pairs.jsonl: best vs worst candidate per prompt")
    min_margin: float = setting(0.0, "pairs: least reward gap between chosen and rejected")
    min_reward: float | None = setting(None, "leave out prompts whose best reward is lower")
    seed: int = setting(0, "seed of the random pick")
    exports: list[Literal["mt_bench", "alpaca_eval"]] = setting(
        [], "outputs for outside judges: mt_bench (FastChat's model_answer/MODEL_ID.jsonl), alpaca_eval (alpaca_eval_outputs.json)"
    )
    model_id: str | None = setting(None, 'name in the exports; unset: the policy\'s name + "-bo{n}"')

    def __post_init__(self):
        check_range("select", self, "at least 1", "top_k")
        check_range("select", self, "at least 0", "min_margin")
        if self.model_id and ("/" in self.model_id or not self.model_id.strip(".")):
            raise ConfigError(f"select.model_id={self.model_id!r}: it names the FastChat answer file model_answer/MODEL_ID.jsonl; use no '/'")


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


@dataclass
class IterateConfig:
    """``rmkit iterate``: rounds of sample → score → select → sft, round k+1 sampling with round k's policy."""

    rounds: int = setting(2, "sample-score-select-sft rounds")
    mode: Literal["rest_em", "raft"] = setting(
        "rest_em",
        "rest_em: fine-tune the base policy on all data kept so far; "
        "raft: continue from the previous round's policy on this round's data",
    )
    output_dir: str = setting(
        "outputs/iterate", "round-K/run (the sampling run) and round-K/policy (its fine-tuned policy) for each round"
    )

    def __post_init__(self):
        check_range("iterate", self, "at least 1", "rounds")


@dataclass
class ServeConfig:
    """``rmkit serve``: the score section as an HTTP reward service for online RL (OpenRLHF, verl, ...)."""

    batching: bool = setting(True, "gather the conversations of concurrent requests into one scoring call; false: each request alone")
    max_batch_wait: float = setting(0.01, "seconds a call short of score.batch_size conversations waits for more requests (0: none)")
    max_batch_conversations: int = setting(256, "a scoring call takes waiting requests up to this many conversations (less padding)")
    max_request_bytes: int = setting(8_388_608, "a larger request body is refused (413)")
    max_conversations: int = setting(1024, "conversations (queries, inputs) per request; more are refused (413)")

    def __post_init__(self):
        check_range("serve", self, "at least 0", "max_batch_wait")
        check_range("serve", self, "at least 1", "max_batch_conversations", "max_request_bytes", "max_conversations")


@dataclass
class Recipe:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = typing.get_type_hints(Recipe)  # section name → its dataclass
