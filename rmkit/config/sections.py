"""The recipe's sections: one dataclass per stage, each with its keys' defaults and its own checks.

Every entry point reads the same :class:`Recipe`; each uses the sections it owns
(``rmkit train``: model, data, lora, train; ``rmkit sample-and-score``: sample, score,
select; ``rmkit serve``: score, serve). :mod:`rmkit.config.recipe` reads one from YAML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from rmkit.config.fields import check_range
from rmkit.errors import ConfigError


@dataclass
class ModelConfig:
    name_or_path: str = "smollm2-135m"  # a path, a hub id, or a built-in short name (rmkit.models.builtin)
    tokenizer: str | None = None  # defaults to name_or_path
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    chat_template: str = "chatml"  # registry template used when the tokenizer has none
    force_chat_template: bool = False  # use chat_template even when the tokenizer has one
    pad_token: str | None = None  # e.g. "<|endoftext|>" when the tokenizer's pad is its EOS
    trust_remote_code: bool = False
    gradient_checkpointing: bool | Literal["auto"] = "auto"  # auto: on when one backward's activations would outweigh the weights
    load_in_4bit: bool = False  # bitsandbytes, GPU only
    load_in_8bit: bool = False


@dataclass
class DataConfig:
    path: str = ""  # file, folder, glob, or a datasets hub id
    split: str = "train"  # for hub datasets
    format: Literal["auto", "hh_rlhf", "trl", "medicalgpt", "sharegpt"] = "auto"
    eval_path: str | None = None  # a separate held-out file; else eval_fraction of path
    eval_fraction: float = 0.05
    seed: int = 42
    max_length: int = 512  # tokens per conversation (prompt + reply); capped at what the model reads (max_position_embeddings)
    max_examples: int | None = None  # cap on parsed pairs (after the split), for quick runs
    on_error: Literal["raise", "skip"] = "raise"

    def __post_init__(self):
        check_range("data", self, "in [0, 1)", "eval_fraction")
        check_range("data", self, "at least 1", "max_length", "max_examples")


@dataclass
class LoraConfig:
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0  # LoRA dropout doubles a CPU step (measured: 15 s vs 7.5 s) for little gain in a short run
    target_modules: list[str] | str = "all-linear"

    def __post_init__(self):
        check_range("lora", self, "at least 1", "r")
        check_range("lora", self, "above 0", "alpha")
        check_range("lora", self, "in [0, 1)", "dropout")


@dataclass
class TrainConfig:
    output_dir: str = "outputs/reward_model"
    per_device_batch_size: int = 8
    eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    num_epochs: float = 1.0
    max_steps: int | None = None  # overrides num_epochs
    max_grad_norm: float = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    center_rewards_coefficient: float | None = None
    group_by_length: bool = True
    # A batch's pairs are backpropagated in runs of at most this many tokens, one after
    # another (same gradients, one run's activations held); auto: activations about the
    # weights' size; null: the whole batch at once.
    tokens_per_backward: int | Literal["auto"] | None = "auto"
    pad_to_multiple_of: int | None = None
    eval_steps: int | None = None  # None: only at the end
    save_steps: int | None = None  # None: no intermediate checkpoints
    save_total_limit: int = 2  # 0: keep every checkpoint
    resume: Literal["auto", "never"] | str = "auto"  # or a checkpoint path
    logging_steps: int = 10  # at least 1
    report_to: list[str] = field(default_factory=list)  # e.g. ["tensorboard"]
    seed: int = 42
    merge: bool = True  # also write a merged model that plain transformers loads

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

    prompts: str = ""  # prompt file, folder or glob (rmkit.data.formats.load_prompts)
    prompts_format: str = "auto"  # auto, mt_bench, messages, sharegpt, hh_rlhf, alpaca_eval, text
    on_error: Literal["raise", "skip"] = "raise"  # bad prompt records: stop, or skip and count
    max_prompts: int | None = None  # the first N prompts only, for quick runs
    policy: str = "smollm2-135m-instruct"  # a path, hub id, or built-in short name (rmkit.models.builtin)
    tokenizer: str | None = None  # defaults to policy
    chat_template: str = "chatml"  # registry template used when the tokenizer has none
    force_chat_template: bool = False
    backend: Literal["vllm", "transformers"] = "vllm"
    n: int = 4  # candidates per prompt
    per_turn: Literal["independent", "best"] = "independent"  # best: continue from each turn's best reply
    temperature: float = 0.7
    category_temperature: dict[str, float] | str | None = None  # a mapping, or a preset name ("mt_bench")
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    max_tokens: int = 512  # per reply
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)  # besides the chat template's own
    stop_token_ids: list[int] = field(default_factory=list)  # besides EOS and the template's end token
    seed: int = 0
    chunk_size: int = 64  # prompts per generation batch; an interruption loses at most one chunk
    executor: Literal["local", "ray"] = "local"  # ray: chunks go to Ray workers (pip install "rmkit[ray]"; --ray-address)
    workers: int | None = None  # Ray workers; None: one per tensor_parallel_size GPUs of the cluster, one per node without GPUs
    batch_size: int = 16  # sequences per generate() call (transformers backend)
    # engine settings (vLLM; dtype and max_model_len also apply to transformers)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_model_len: int | None = None  # None: the model's own limit
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1  # more replicas: sample.executor=ray, or one process each with --shard i/n, then `rmkit merge`
    gpu_memory_utilization: float = 0.5  # GPU: leaves room for the reward model; CPU: KV cache sized from need (rmkit.models.kv_cache)
    enforce_eager: bool = False
    output_dir: str = "runs/sample"  # the run folder (--output overrides)

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


@dataclass
class ScorerSpec:
    """One entry of ``score.scorers``: set exactly one of reward_model, verifier, function."""

    name: str = ""  # its column in candidates.jsonl (scores.NAME) and stats.json
    weight: float = 1.0  # selection ranks by the weighted sum of all scorers; 0: recorded only
    reward_model: str = ""  # a reward model folder, scored with the score section's settings
    verifier: Literal["", "ifeval", "ifeval_loose", "math", "ifbench"] = ""  # built-in checks (rmkit.scoring.verifiers)
    function: str = ""  # "module:function", called with (prompt record, messages) -> float


@dataclass
class ScoreConfig:
    """``rmkit score``: candidates → rewards from reward models, verifiers and Python functions."""

    reward_model: str = ""  # an rmkit training output (merged, or adapter + base) or a Hugging Face classifier
    scorers: list[ScorerSpec] = field(default_factory=list)  # several scorers; else reward_model alone
    verifier_workers: int = 2  # processes for the built-in verifiers; 0: in the main process
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # of the reward model's weights
    chat_template: str = "chatml"  # registry template used when the RM's tokenizer has none
    force_chat_template: bool = False  # use chat_template even when the RM's tokenizer has one
    max_length: int = 2048  # tokens per scored conversation; oldest turns are dropped first; capped at what the RM reads
    batch_size: int = 8  # conversations per forward pass
    backend: Literal["transformers", "vllm"] = "transformers"  # vllm: the pooling runner (GPU)
    gpu_memory_utilization: float = 0.3  # vllm backend on GPU (on CPU the KV cache is sized from need)
    enforce_eager: bool = False  # vllm backend

    def __post_init__(self):
        check_range("score", self, "at least 1", "max_length", "batch_size")
        check_range("score", self, "at least 0", "verifier_workers")
        check_range("score", self, "in (0, 1]", "gpu_memory_utilization")


@dataclass
class SelectConfig:
    """``rmkit select``: scored candidates → SFT data, DPO pairs, exports and stats."""

    top_k: int = 1  # conversations per prompt written to sft.jsonl (1: best-of-N)
    keep_ties: bool = False  # also keep every further distinct candidate that ties the best reward (ReST-EM: all correct answers)
    pick: Literal["best", "random"] = "best"  # random: the control arm, a seeded random candidate per prompt, as many as best would keep, from the same prompts
    pairs: bool = True  # write pairs.jsonl: best vs worst candidate per prompt
    min_margin: float = 0.0  # pairs: least reward gap between chosen and rejected
    min_reward: float | None = None  # leave out prompts whose best reward is lower
    seed: int = 0  # for the random baseline pick
    exports: list[Literal["mt_bench", "alpaca_eval"]] = field(default_factory=list)
    model_id: str | None = None  # name in the exports; default: the policy's name + "-bo{n}"

    def __post_init__(self):
        check_range("select", self, "at least 1", "top_k")
        check_range("select", self, "at least 0", "min_margin")


@dataclass
class SftConfig:
    """``rmkit sft``: supervised fine-tuning of the policy on a run's sft.jsonl (TRL's SFTTrainer)."""

    data: str = ""  # an sft.jsonl or a run folder; default: the run named on the command line, or sample.output_dir
    policy: str = ""  # the model to fine-tune; default: sample.policy
    output_dir: str = "outputs/sft"  # the merged model (a folder sample.policy accepts)
    use_lora: bool = True  # LoRA with the lora section's settings, merged at the end; false: full fine-tuning
    max_length: int = 1024  # tokens per conversation; longer ones are cut at the end (TRL's truncation)
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = 0.05
    num_epochs: float = 1.0
    max_steps: int | None = None  # overrides num_epochs
    bf16: bool = False  # bf16 autocast (GPU or a recent CPU)
    gradient_checkpointing: bool = True  # recompute activations in the backward: less memory, about a third more compute (TRL's default)
    logging_steps: int = 10
    seed: int = 42

    def __post_init__(self):
        counts = ("max_length", "per_device_batch_size", "gradient_accumulation_steps", "max_steps", "logging_steps")
        check_range("sft", self, "at least 1", *counts)
        check_range("sft", self, "above 0", "learning_rate", "num_epochs")
        check_range("sft", self, "in [0, 1]", "warmup_ratio")


@dataclass
class IterateConfig:
    """``rmkit iterate``: rounds of sample → score → select → sft, round k+1 sampling with round k's policy."""

    rounds: int = 2  # sample-score-select-sft rounds
    mode: Literal["rest_em", "raft"] = "rest_em"  # rest_em: fine-tune the base policy on all data kept so far; raft: continue from the previous round's policy on this round's data
    output_dir: str = "outputs/iterate"  # round-K/run (the sampling run) and round-K/policy (its fine-tuned policy) for each round

    def __post_init__(self):
        check_range("iterate", self, "at least 1", "rounds")


@dataclass
class ServeConfig:
    """``rmkit serve``: the score section as an HTTP reward service for online RL (OpenRLHF, verl, ...)."""

    batching: bool = True  # gather the conversations of concurrent requests into one scoring call; false: each request alone
    max_batch_wait: float = 0.01  # seconds a call short of score.batch_size conversations waits for more requests (0: none)
    max_batch_conversations: int = 256  # a scoring call takes waiting requests up to this many conversations (less padding)
    max_request_bytes: int = 8_388_608  # a larger request body is refused (413)
    max_conversations: int = 1024  # conversations (queries, inputs) per request; more are refused (413)

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
