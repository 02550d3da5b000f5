"""Recipes: one YAML file → typed dataclasses, with ``section.key=value`` overrides.

Every entry point reads the same :class:`Recipe`; each uses the sections it owns
(``rmkit.train``: model, data, lora, train; ``rmkit sample-and-score``: sample, score,
select; ``rmkit serve``: score, serve). Unknown keys and wrong types fail with a message that
names the key and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rmkit.errors import ConfigError, not_utf8  # ConfigError: raised here; imported from here by callers


# A float key reads numeric text as the number: YAML 1.1 reads 3e-4 as a string (it wants
# 3.0e-4), in a recipe file and an override alike, and users write it the short way.
# The words YAML 1.1 reads as booleans, for keys that take one of them as a string (mixed_precision: no).
YAML_BOOL_WORDS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

# The ranges numeric settings keep to; each rule's words are its message ("must be at least 1, got 0").
RANGES = {
    "at least 1": lambda value: value >= 1,
    "at least 0": lambda value: value >= 0,
    "above 0": lambda value: value > 0,
    "in [0, 1)": lambda value: 0 <= value < 1,
    "in (0, 1]": lambda value: 0 < value <= 1,
    "in [0, 1]": lambda value: 0 <= value <= 1,
    "in [-2, 2]": lambda value: -2 <= value <= 2,  # vLLM's presence and frequency penalties
}


def check_range(section: str, config: Any, rule: str, *keys: str) -> None:
    """Raise :class:`ConfigError` naming ``section.key`` for the first of ``keys`` whose value breaks
    ``rule`` (a key of :data:`RANGES`); None (unset) passes, and so does a word such as "auto"."""
    for key in keys:
        value = getattr(config, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not RANGES[rule](value):
            raise ConfigError(f"{section}.{key} must be {rule}, got {value}")


@dataclass
class ModelConfig:
    name_or_path: str = "smollm2-135m"  # a path, a hub id, or a built-in short name (rmkit.builtin_models)
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
    policy: str = "smollm2-135m-instruct"  # a path, hub id, or built-in short name (rmkit.builtin_models)
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
    gpu_memory_utilization: float = 0.5  # GPU: leaves room for the reward model; CPU: KV cache sized from need (rmkit.sampling.kv_cache)
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
    verifier: Literal["", "ifeval", "ifeval_loose", "math", "ifbench"] = ""  # built-in checks (rmkit.sampling.verifiers)
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


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow int→float and str→Path."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass  # try the next type; none fits: the error below names the union
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads no/off/yes/on as booleans: give back the word the key takes
            value = next((word for word in YAML_BOOL_WORDS[value] if word in args), value)
        if value in args:
            return value
        raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {k: _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()} if args else value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value)
    if tp is Path and isinstance(value, str):
        return Path(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'recipe'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        where = f"section {prefix!r}" if prefix else "the recipe"
        raise ConfigError(f"unknown key {prefix + '.' if prefix else ''}{unknown[0]} in {where}; valid keys: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in values.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.max_steps=30`` → (["train", "max_steps"], 30); values are YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value of {key.strip()} is not valid YAML ({yaml_problem(err)})") from None
    return key.strip().split("."), value


def yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong, from a YAML error: its problem, else its first line (a reader error)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "constructor for the tag" in problem:  # safe_load builds no Python objects
        problem += "; a recipe is plain YAML, without !!python or other tags"
    return problem


def read_recipe_file(path: str | Path) -> dict:
    """A recipe file's raw sections; :class:`ConfigError` names the file (and line) when it is not a
    UTF-8 YAML mapping."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recipe {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"recipe {path} is a folder: give the recipe's YAML file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, reason = not_utf8(data, err)
        raise ConfigError(f"recipe {path}, line {line}: {reason}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark, context = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if isinstance(err, yaml.reader.ReaderError):  # a character YAML refuses, found by its position
            where = f", line {text.count(chr(10), 0, err.position) + 1}"
        opened = f" ({err.context} at line {context.line + 1}, column {context.column + 1})" if context and err.context else ""
        raise ConfigError(f"recipe {path}{where}: not valid YAML: {yaml_problem(err)}{opened}") from None
    if not isinstance(raw, dict | None):
        raise ConfigError(f"recipe {path}: expected a mapping of sections (train:, sample:, ...), got a {type(raw).__name__}")
    return raw or {}


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return raw


def load_recipe(path: str | Path | None, overrides: list[str] = (), cls: type = Recipe) -> Any:
    """Load a recipe YAML (or just defaults when ``path`` is None) and apply overrides."""
    raw = read_recipe_file(path) if path is not None else {}
    raw = apply_overrides(raw, list(overrides))
    try:
        return _build(cls, raw, "")
    except ConfigError as err:
        raise ConfigError(f"{path or 'recipe'}: {err}") from None


def dump_recipe(recipe: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
