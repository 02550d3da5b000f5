"""A recipe's scorers as one: reward models, built-in verifiers and ``module:function`` checks,
each with a name and a weight.

``score.scorers`` lists several scorers (:class:`ScorerSet`); a candidate's ``reward`` is their
weighted sum and ``scores`` holds each one's value. A recipe with only ``score.reward_model``
has one scorer, ``reward``, of weight 1.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from rmkit.config.sections import ScoreConfig, ScorerSpec
from rmkit.conversation import Conversation
from rmkit.data.data_report import DataReport
from rmkit.errors import ConfigError
from rmkit.scoring.reward_models import load_scorer
from rmkit.scoring.verifiers import as_score


def scorer_specs(cfg: ScoreConfig) -> list[ScorerSpec]:
    """``score.scorers`` (checked as the section is read), or the one ``score.reward_model``."""
    if not cfg.scorers:
        if not cfg.reward_model:
            raise ConfigError(
                "score.reward_model is not set: give a reward model folder (score.reward_model=PATH) or score.scorers"
            )
        return [ScorerSpec(name="reward", weight=1.0, reward_model=cfg.reward_model)]
    return list(cfg.scorers)


class ScorerSet:
    """All scorers of a recipe; calling it on conversations and their prompt records gives,
    per conversation, ``{"reward": weighted sum, "scores": {name: value}, "errors": {name: text}}``.

    A reward model's None (the reply alone is too long) makes the weighted sum None when its
    weight is not 0. A verifier or function that raises, or returns no finite number (NaN, a
    string), scores 0.0; the error is kept per candidate and counted in ``failures`` (by scorer name).
    """

    def __init__(self, cfg: ScoreConfig, reward_models: dict | None = None):
        from rmkit.scoring.verifiers import VerifierPool, load_function

        self.specs = scorer_specs(cfg)
        self.report, self.failures = DataReport(), Counter()
        self.pool = VerifierPool(cfg.verifier_workers)
        self.models, self.functions = {}, {}
        for i, spec in enumerate(self.specs):
            if spec.reward_model:
                label = f"score.scorers[{i}].reward_model" if cfg.scorers else "score.reward_model"
                model = (reward_models or {}).get(spec.name) or load_scorer(
                    dataclasses.replace(cfg, reward_model=spec.reward_model), label
                )
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
