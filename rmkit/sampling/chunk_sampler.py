"""The sampler of one chunk of prompts: what the local run and every Ray worker run.

A :class:`ChunkSampler` loads its engines once (the policy backend and, when scores are
needed, the reward model) and turns each chunk of ``(order, prompt)`` into a
:class:`Finished`, which the driver (:func:`rmkit.sampling.pipeline.append_finished`)
appends to the run folder. :class:`Timed` counts what the scorer spent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rmkit.config.sections import Recipe
from rmkit.conversation import Prompt


@dataclass
class Finished:
    """A sampled (and, when asked, scored) chunk: per prompt its candidate lines, and what it took."""

    groups: list[list[dict]]
    timings: dict[str, dict[str, float]]  # stage -> amounts for RunFolder.add_timing
    needs_scoring: bool  # sampled without scores (`rmkit sample`)


class ChunkSampler:
    """One worker's engines, loaded once: the policy backend and, when scores are needed, the
    reward model. :meth:`sample` turns a chunk of ``(order, prompt)`` (at most ``chunk_prompts``)
    into a :class:`Finished`; the local run and every Ray worker run this same code."""

    def __init__(self, recipe: Recipe, score_too: bool, chunk_prompts: int, backend=None, scorer=None):
        from rmkit.models.builtin import check_model
        from rmkit.sampling.policy import load_policy
        from rmkit.scoring.scorer_set import load_scorers

        self.cfg, self.score_too = recipe.sample, score_too
        if backend is None:
            check_model(self.cfg.policy, "sample.policy")  # a missing policy fails before the reward model loads
        if scorer is None and (score_too or self.cfg.per_turn == "best"):
            scorer = load_scorers(recipe.score)
        elif scorer is not None:
            scorer = load_scorers(recipe.score, scorer)
        self.scorer = scorer
        self.timed = Timed(scorer) if scorer is not None else None
        loaded = load_policy(self.cfg, sequences=chunk_prompts * self.cfg.n, backend=backend)
        self.backend, self.policy = loaded.backend, loaded.policy

    def sample(self, chunk: list[tuple[int, Prompt]]) -> Finished:
        from rmkit.sampling.candidates import score_groups
        from rmkit.sampling.generate import sample_prompts

        cfg, timed = self.cfg, self.timed
        # Every chunk starts from an empty prefix cache, as in a fresh engine (a resumed run's):
        # a prompt prefilled on top of cached blocks gets slightly different numbers than one
        # prefilled whole, enough to change some sampled tokens. Other backends cache nothing.
        if hasattr(self.backend, "forget_cached_prompts"):
            self.backend.forget_cached_prompts()
        began = time.perf_counter()
        groups = sample_prompts([p for _, p in chunk], self.backend, self.policy, cfg, timed if cfg.per_turn == "best" else None)
        seconds = time.perf_counter() - began - (timed.pending if timed else 0.0)
        unscored = cfg.per_turn == "independent" and not self.score_too
        if cfg.per_turn == "independent" and self.score_too:
            score_groups(groups, timed)
        for (order, _), group in zip(chunk, groups):
            for line in group:
                line["order"] = order
        tokens = sum(turn["tokens"] for group in groups for line in group for turn in line["turns"])
        timings = {"sample": {"seconds": seconds, "tokens": tokens}}
        if timed:
            timings["score"] = timed.take()
        return Finished(groups, timings, unscored)


class Timed:
    """A scorer that counts its seconds and conversations (``pending`` since the last ``take``),
    and passes on what the reward model's length limit cut (the scorer's ``report``, if any)."""

    def __init__(self, score):
        self.score, self.pending, self.conversations = score, 0.0, 0

    def __call__(self, conversations, records):
        began = time.perf_counter()
        rewards = self.score(conversations, records)
        self.pending += time.perf_counter() - began
        self.conversations += len(conversations)
        return rewards

    def take(self) -> dict:
        amounts = {"seconds": self.pending, "conversations": self.conversations}
        self.pending, self.conversations = 0.0, 0
        report = getattr(self.score, "report", None)
        if report is not None:
            for kind in ("truncated", "dropped"):
                amounts |= {f"{kind}_{reason}": count for reason, count in getattr(report, kind).items()}
                getattr(report, kind).clear()
        failures = getattr(self.score, "failures", None)
        if failures:
            amounts |= {f"failed_{name}": count for name, count in failures.items()}
            failures.clear()
        return amounts
