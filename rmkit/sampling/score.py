"""Scoring candidates: reward models in length-sorted batches, verifiers and Python functions.

``score.scorers`` lists several scorers, each with a name and a weight (:class:`ScorerSet`);
a candidate's ``reward`` is their weighted sum and ``scores`` holds each one's value. A
recipe with only ``score.reward_model`` has one scorer, ``reward``, of weight 1.

Each conversation is rendered and tokenized with the reward model's own tokenizer and
template through :func:`rmkit.data.encode.encode_conversation`, exactly as in training, so
the policy's chat format never leaks into a score. Rewards are the raw logit of the
1-label head on both paths (vLLM's classify would apply a sigmoid unless told not to).
A conversation whose last reply alone exceeds ``score.max_length`` gets ``None``; a
``score.max_length`` above what the reward model reads is capped there
(:func:`rmkit.modeling.fit_length`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rmkit.config import ConfigError, ScoreConfig, ScorerSpec
from rmkit.conversation import Conversation
from rmkit.data.data_report import DataReport
from rmkit.data.encode import SpecialTokens, TooLong, encode_conversation
from rmkit.logs import engine_output, vllm_args
from rmkit.sampling.candidates import prompt_record, through_turn
from rmkit.sampling.select import mark_selected
from rmkit.sampling.verifiers import as_score


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


def score_ids(model, pad_id: int, sequences: list[list[int] | None], batch_size: int, by_length: bool = True) -> list[float | None]:
    """Rewards of token sequences (None stays None), left-padded to the longest of each batch."""
    import torch

    from rmkit.modeling import compute_rewards

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
        from rmkit.modeling import fit_length

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

        from rmkit.modeling import fit_length, load_tokenizer, model_config, reward_model_config, reward_model_folder
        from rmkit.processes import start_reaper
        from rmkit.sampling.cpu_threads import engine_cores
        from rmkit.sampling.kv_cache import engine_memory_args

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
                **engine_memory_args(folder, cfg.dtype, self.max_length, cfg.batch_size, "score.max_length", cfg.gpu_memory_utilization),
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
    from rmkit.builtin_models import check_model

    if not cfg.reward_model:
        raise ConfigError(f"{label} is not set: give a reward model folder")
    check_model(cfg.reward_model, label)
    if cfg.backend == "vllm":
        with engine_output():  # vLLM and its engine processes print to the log file, not the screen
            return VllmScorer(cfg)
    return TransformersScorer(cfg)


def scorer_specs(cfg: ScoreConfig) -> list[ScorerSpec]:
    """``score.scorers``, or the one ``score.reward_model``; checked: unique names, one kind each."""
    if not cfg.scorers:
        if not cfg.reward_model:
            raise ConfigError("score.reward_model is not set: give a reward model folder (score.reward_model=PATH) or score.scorers")
        return [ScorerSpec(name="reward", weight=1.0, reward_model=cfg.reward_model)]
    names = set()
    for i, spec in enumerate(cfg.scorers):
        where = f"score.scorers[{i}]"
        if not spec.name:
            raise ConfigError(f"{where}.name is not set")
        if spec.name in names:
            raise ConfigError(f"{where}.name: {spec.name!r} is used twice")
        names.add(spec.name)
        if sum(map(bool, (spec.reward_model, spec.verifier, spec.function))) != 1:
            raise ConfigError(f"{where} ({spec.name}): set exactly one of reward_model, verifier, function")
    return list(cfg.scorers)


class ScorerSet:
    """All scorers of a recipe; calling it on conversations and their prompt records gives,
    per conversation, ``{"reward": weighted sum, "scores": {name: value}, "errors": {name: text}}``.

    A reward model's None (the reply alone is too long) makes the weighted sum None when its
    weight is not 0. A verifier or function that raises, or returns no finite number (NaN, a
    string), scores 0.0; the error is kept per candidate and counted in ``failures`` (by scorer name).
    """

    def __init__(self, cfg: ScoreConfig, reward_models: dict | None = None):
        from rmkit.sampling.verifiers import VerifierPool, load_function

        self.specs = scorer_specs(cfg)
        self.report, self.failures = DataReport(), Counter()
        self.pool = VerifierPool(cfg.verifier_workers)
        self.models, self.functions = {}, {}
        for i, spec in enumerate(self.specs):
            if spec.reward_model:
                label = f"score.scorers[{i}].reward_model" if cfg.scorers else "score.reward_model"
                model = (reward_models or {}).get(spec.name) or load_scorer(dataclasses.replace(cfg, reward_model=spec.reward_model), label)
                model.report = self.report  # one count of what every reward model cut
                self.models[spec.name] = model
            elif spec.function:
                self.functions[spec.name] = load_function(spec.function)

    def __call__(self, conversations: list[Conversation], records: list[dict]) -> list[dict]:
        results = [{"reward": None, "scores": {}, "errors": {}} for _ in conversations]
        verifiers = [spec for spec in self.specs if spec.verifier]
        # The verifiers' processes check while the reward models score.
        checked = self.pool.submit([(s.verifier, r, c) for s in verifiers for r, c in zip(records, conversations)])
        for name, model in self.models.items():
            for result, value in zip(results, model(conversations)):
                result["scores"][name] = value
        for spec in verifiers:
            for result in results:
                result["scores"][spec.name], error = next(checked)
                if error:
                    result["errors"][spec.name] = error
        for name, function in self.functions.items():
            for result, record, messages in zip(results, records, conversations):
                try:
                    result["scores"][name] = as_score(function(record, messages))
                except Exception as err:  # the user's check failed on this candidate (or gave no number): counted, not fatal
                    result["scores"][name], result["errors"][name] = 0.0, f"{type(err).__name__}: {err}"
        for result in results:
            self.failures.update(result["errors"].keys())
            values = [(spec.weight, result["scores"][spec.name]) for spec in self.specs]
            if all(value is not None for weight, value in values if weight):
                result["reward"] = sum(weight * value for weight, value in values if weight)
            if not result["errors"]:
                del result["errors"]
        return results

    def close(self) -> None:
        self.pool.close()


def load_scorers(cfg: ScoreConfig, given=None) -> ScorerSet:
    """The recipe's scorers; ``given`` (a ScorerSet, a reward-model callable for the one
    ``reward`` scorer, or {name: callable}) replaces reward models that would be loaded."""
    if isinstance(given, ScorerSet):
        return given
    return ScorerSet(cfg, given if isinstance(given, dict) or given is None else {"reward": given})


def load_scoring_model(cfg: ScoreConfig):
    """A trained reward model ready to score, as ``(model, tokenizer)``: the RM's own template, else
    ``score.chat_template``; on the GPU if any. (Training builds a new one: rmkit.modeling.build_reward_model.)"""
    import torch

    from rmkit.modeling import load_trained_reward_model

    model, tokenizer = load_trained_reward_model(
        cfg.reward_model, dtype=cfg.dtype, chat_template=cfg.chat_template, force_chat_template=cfg.force_chat_template
    )
    return (model.cuda() if torch.cuda.is_available() else model), tokenizer


def score_groups(groups: list[list[dict]], score: ScorerSet) -> None:
    """(Re)score each prompt's candidate lines in place: each finished conversation, or in best
    mode every turn; then mark each prompt's best."""
    lines = [line for group in groups for line in group]
    items = [(line, t) for line in lines for t in (range(len(line["turns"])) if line["per_turn"] == "best" else [None])]
    conversations = [line["messages"] if t is None else through_turn(line, t) for line, t in items]
    results = score(conversations, [prompt_record(line) for line, _ in items])
    for (line, t), result in zip(items, results):
        if t is not None:
            line["turns"][t].update(result)
        if t is None or t == len(line["turns"]) - 1:
            line.pop("errors", None)  # a re-score replaces the last one's errors
            line.update(result)
    for group in groups:
        mark_selected(group)
