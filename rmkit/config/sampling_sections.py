"""The sampling sections of a recipe: sample, score (its scorers), select, iterate and serve.
See :mod:`rmkit.config.sections`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rmkit.config.fields import check_range, setting
from rmkit.errors import ConfigError

CATEGORY_TEMPERATURES: dict[str, dict[str, float]] = {
    "mt_bench": {
        "writing": 0.7,
        "roleplay": 0.7,
        "extraction": 0.0,
        "math": 0.0,
        "coding": 0.0,
        "reasoning": 0.0,
        "stem": 0.1,
        "humanities": 0.1,
    },
}


@dataclass
class SampleConfig:
    """``rmkit sample``: prompts → N candidates per prompt from a policy model."""

    prompts: str = setting("", "the prompts: a file, folder or glob (rmkit.data.formats.load_prompts)")
    prompts_format: Literal["auto", "mt_bench", "messages", "sharegpt", "hh_rlhf", "alpaca_eval", "text"] = setting(
        "auto", "the prompt records' format; auto: each record's keys tell it"
    )
    on_error: Literal["raise", "skip"] = setting(
        "raise", "a bad prompt record: raise stops at it; skip leaves it out and counts it"
    )
    max_prompts: int | None = setting(None, "only the first this many prompts, for quick runs")
    policy: str = setting(
        "smollm2-135m-instruct", "the model that writes the candidates: a folder, hub id or built-in short name (`rmkit models`)"
    )
    tokenizer: str | None = setting(None, "the policy's tokenizer folder or hub id; unset: the policy's own")
    chat_template: str = setting(
        "chatml", "template (chatml, llama-3, vicuna, plain) prompts are rendered with when the policy's tokenizer has none"
    )
    force_chat_template: bool = setting(False, "use chat_template even when the policy's tokenizer has a template of its own")
    backend: Literal["vllm", "transformers"] = setting(
        "vllm", "the generation engine: vllm (batched, CPU or GPU) or transformers (model.generate)"
    )
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
    seed: int = setting(
        0, "seed of sampling: each request's seed comes from it and the prompt's id, so resumed or sharded runs sample the same"
    )
    chunk_size: int = setting(64, "prompts per generation batch; an interruption loses at most one chunk", neutral=True)
    executor: Literal["local", "ray"] = setting(
        "local", 'where chunks are sampled: local, or ray (Ray workers; pip install "rmkit[ray]"; --ray-address)', neutral=True
    )
    workers: int | None = setting(
        None, "Ray workers; unset: one per tensor_parallel_size GPUs of the cluster, one per node without GPUs", neutral=True
    )
    batch_size: int = setting(16, "sequences per generate() call (transformers backend)", neutral=True)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto", "dtype of the policy's weights; auto: the model's own"
    )
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
    enforce_eager: bool = setting(
        False, "vLLM without CUDA graphs: slower, but starts sooner and needs less memory", neutral=True
    )
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
    dtype: Literal["float32", "bfloat16", "float16"] = setting(
        "float32", "dtype of the reward model's weights; bfloat16 scores ~1.8x faster on CPU but flips some near-tied picks"
    )
    chat_template: str = setting(
        "chatml", "template (chatml, llama-3, vicuna, plain) used when the reward model's tokenizer has none"
    )
    force_chat_template: bool = setting(False, "use chat_template even when the reward model's tokenizer has one")
    max_length: int = setting(
        2048, "tokens per scored conversation; oldest turns are dropped first; capped at what the reward model reads"
    )
    batch_size: int = setting(8, "conversations per forward pass", neutral=True)
    backend: Literal["transformers", "vllm"] = setting(
        "transformers", "the scoring engine: transformers, or vllm's pooling runner (GPU)"
    )
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
        [],
        "outputs for outside judges: mt_bench (FastChat's model_answer/MODEL_ID.jsonl), alpaca_eval (alpaca_eval_outputs.json)",
    )
    model_id: str | None = setting(None, 'name in the exports; unset: the policy\'s name + "-bo{n}"')

    def __post_init__(self):
        check_range("select", self, "at least 1", "top_k")
        check_range("select", self, "at least 0", "min_margin")
        if self.model_id and ("/" in self.model_id or not self.model_id.strip(".")):
            raise ConfigError(
                f"select.model_id={self.model_id!r}: it names the FastChat answer file model_answer/MODEL_ID.jsonl; use no '/'"
            )


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

    batching: bool = setting(
        True, "gather the conversations of concurrent requests into one scoring call; false: each request alone"
    )
    max_batch_wait: float = setting(
        0.01, "seconds a call short of score.batch_size conversations waits for more requests (0: none)"
    )
    max_batch_conversations: int = setting(
        256, "a scoring call takes waiting requests up to this many conversations (less padding)"
    )
    max_request_bytes: int = setting(8_388_608, "a larger request body is refused (413)")
    max_conversations: int = setting(1024, "conversations (queries, inputs) per request; more are refused (413)")

    def __post_init__(self):
        check_range("serve", self, "at least 0", "max_batch_wait")
        check_range("serve", self, "at least 1", "max_batch_conversations", "max_request_bytes", "max_conversations")
