"""Reward models that score conversations: a trained rmkit output (or any Hugging Face
classifier) loaded, and conversations scored in length-sorted batches, in transformers or
vLLM's pooling runner. What every consumer scores with (:mod:`rmkit.scoring.scorer_set` adds
verifiers and functions).

Each conversation is rendered and tokenized with the reward model's own tokenizer and
template through :func:`rmkit.data.encode.encode_conversation`, exactly as in training, so
the policy's chat format never leaks into a score. Rewards are the raw logit of the
1-label head on both paths (vLLM's classify would apply a sigmoid unless told not to).
A conversation whose last reply alone exceeds ``score.max_length`` gets ``None``; a
``score.max_length`` above what the reward model reads is capped there
(:func:`rmkit.models.lengths.fit_length`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rmkit.config.sections import ModelConfig, ScoreConfig
from rmkit.conversation import Conversation
from rmkit.data.data_report import DataReport
from rmkit.data.encode import SpecialTokens, TooLong, encode_conversation
from rmkit.errors import ConfigError, MissingPath
from rmkit.logs import engine_output, note, vllm_args
from rmkit.models.builtin import resolve_model


def batches(lengths: list[int], batch_size: int, by_length: bool = True) -> list[list[int]]:
    """Index batches; by length (longest first, so memory runs out at once if it will) or in order."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)) if by_length else list(range(len(lengths)))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def encode_all(tokenizer, conversations: list[Conversation], max_length: int, report: DataReport) -> list[list[int] | None]:
    special = SpecialTokens.of(tokenizer)
    out: list[list[int] | None] = []
    for messages in conversations:
        try:
            out.append(encode_conversation(tokenizer, messages, max_length, special, report))
        except TooLong:
            report.dropped["reply_too_long"] += 1
            out.append(None)
    return out


def score_ids(
    model, pad_id: int, sequences: list[list[int] | None], batch_size: int, by_length: bool = True
) -> list[float | None]:
    """Rewards of token sequences (None stays None), left-padded to the longest of each batch."""
    import torch

    from rmkit.models.classifier import compute_rewards

    present = [i for i, ids in enumerate(sequences) if ids is not None]
    rewards: list[float | None] = [None] * len(sequences)
    device = next(model.parameters()).device
    for batch in batches([len(sequences[i]) for i in present], batch_size, by_length):
        rows = [sequences[present[b]] for b in batch]
        width = max(len(ids) for ids in rows)
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in rows], device=device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=device)
        with torch.inference_mode():
            values = compute_rewards(model, input_ids, mask).tolist()
        for b, value in zip(batch, values):
            rewards[present[b]] = value
    return rewards


def score_conversations(
    model, tokenizer, conversations: list[Conversation], batch_size: int, max_length: int, report: DataReport | None = None
) -> list[float | None]:
    """One reward per conversation (each ending with an assistant reply)."""
    report = report if report is not None else DataReport()
    sequences = encode_all(tokenizer, conversations, max_length, report)
    return score_ids(model, tokenizer.pad_token_id, sequences, batch_size)


class TransformersScorer:
    """A reward model in transformers; calling it scores a list of conversations."""

    def __init__(self, cfg: ScoreConfig):
        from rmkit.models.lengths import fit_length

        self.model, self.tokenizer = load_scoring_model(cfg)
        self.cfg, self.report = cfg, DataReport()
        self.max_length = fit_length(cfg.max_length, self.model.config, self.tokenizer, "score.max_length", cfg.reward_model)

    def __call__(self, conversations: list[Conversation]) -> list[float | None]:
        return score_conversations(self.model, self.tokenizer, conversations, self.cfg.batch_size, self.max_length, self.report)


class VllmScorer:
    """The same scores from vLLM's pooling runner (a merged model folder or a Hugging Face classifier)."""

    def __init__(self, cfg: ScoreConfig):
        from vllm import LLM
        from vllm.platforms import current_platform

        from rmkit.models.classifier import load_tokenizer
        from rmkit.models.cpu_threads import engine_cores
        from rmkit.models.kv_cache import engine_memory_args
        from rmkit.models.lengths import fit_length, model_config
        from rmkit.processes import start_reaper

        folder = str(reward_model_folder(cfg.reward_model))
        if Path(folder, "adapter_config.json").exists():
            raise ConfigError(f"score.backend=vllm needs a merged model; {folder} holds a LoRA adapter only")
        self.tokenizer = load_tokenizer(reward_model_config(folder, False, cfg.chat_template, cfg.force_chat_template))
        self.cfg, self.report = cfg, DataReport()
        self.max_length = fit_length(cfg.max_length, model_config(folder), self.tokenizer, "score.max_length", cfg.reward_model)
        start_reaper()  # vLLM's engine processes do not watch this one: the reaper does
        with engine_cores(current_platform.is_cpu()):
            self.llm = LLM(
                model=folder,
                runner="pooling",
                dtype=cfg.dtype,
                max_model_len=self.max_length,  # no scored sequence is longer
                enforce_eager=cfg.enforce_eager,
                **vllm_args(),
                **engine_memory_args(
                    folder, cfg.dtype, self.max_length, cfg.batch_size, "score.max_length", cfg.gpu_memory_utilization
                ),
            )

    def __call__(self, conversations: list[Conversation]) -> list[float | None]:
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        sequences = encode_all(self.tokenizer, conversations, self.max_length, self.report)
        present = [ids for ids in sequences if ids is not None]
        outputs = self.llm.classify(
            [TokensPrompt(prompt_token_ids=ids) for ids in present],
            pooling_params=PoolingParams(use_activation=False),  # the raw logit, not sigmoid(logit)
            use_tqdm=False,
        )
        values = iter(out.outputs.probs[0] for out in outputs)
        return [None if ids is None else next(values) for ids in sequences]


# A reward model ready to score (TransformersScorer, VllmScorer): one reward per conversation, None when too long.
RewardModel = Callable[[list[Conversation]], list[float | None]]


def load_scorer(cfg: ScoreConfig, label: str = "score.reward_model") -> RewardModel:
    """The reward model ``cfg`` names, on its backend; ``label`` names the setting in errors."""
    from rmkit.models.builtin import check_model

    if not cfg.reward_model:
        raise ConfigError(f"{label} is not set: give a reward model folder")
    check_model(cfg.reward_model, label)
    if cfg.backend == "vllm":
        with engine_output():  # vLLM and its engine processes print to the log file, not the screen
            return VllmScorer(cfg)
    return TransformersScorer(cfg)


def load_scoring_model(cfg: ScoreConfig):
    """A trained reward model ready to score, as ``(model, tokenizer)``: the RM's own template, else
    ``score.chat_template``; on the GPU if any. (Training builds a new one: rmkit.training.reward_model.build_reward_model.)"""
    import torch

    model, tokenizer = load_trained_reward_model(
        cfg.reward_model, dtype=cfg.dtype, chat_template=cfg.chat_template, force_chat_template=cfg.force_chat_template
    )
    return (model.cuda() if torch.cuda.is_available() else model), tokenizer


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
    from rmkit.models.classifier import load_adapter, load_classifier, load_tokenizer

    folder = reward_model_folder(path)
    tokenizer = load_tokenizer(reward_model_config(str(folder), trust_remote_code, chat_template, force_chat_template))
    if (folder / "adapter_config.json").exists():
        model = load_adapter(folder, tokenizer, dtype, trust_remote_code)
    else:
        model, new_head = load_classifier(str(folder), tokenizer, dtype, trust_remote_code)
        if new_head:
            note(
                f"{folder} has no trained score head: a new one is initialised at random, so its rewards mean nothing",
                warning=True,
            )
    return model.eval(), tokenizer
