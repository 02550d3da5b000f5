"""Choosing among one prompt's candidates: best-of-N, top-k or all ties, a DPO pair, a random baseline
(and ``select.pick: random``, the random-pick control that keeps as many random candidates);
and the run's summary of what selection gained (:func:`summarize`, :func:`format_summary`).

A reward of ``None`` (a candidate the reward model could not score) is never chosen. Ties
go to the lower candidate index, so every rerun selects the same candidates. The random
pick is drawn from a seed and the prompt id, not from the order prompts come in, so it is
the same whether a run was resumed, sharded or not.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from rmkit.config.sections import SelectConfig


def ranking(rewards: list[float | None]) -> list[int]:
    """Indices of the scored candidates, best first; ties keep the lower index first."""
    return sorted((i for i, r in enumerate(rewards) if r is not None), key=lambda i: (-rewards[i], i))


def best_index(rewards: list[float | None]) -> int:
    """The argmax (lowest index among ties); 0 when nothing is scored."""
    order = ranking(rewards)
    return order[0] if order else 0


def random_index(seed: int, prompt_id: str, candidates: list[int]) -> int:
    return candidates[_prompt_seed(seed, prompt_id) % len(candidates)]


def random_indices(seed: int, prompt_id: str, candidates: list[int], k: int) -> list[int]:
    """``k`` distinct candidates drawn at random; the first is :func:`random_index`'s pick."""
    first = random_index(seed, prompt_id, candidates)
    rest = [c for c in candidates if c != first]
    return [first, *random.Random(_prompt_seed(seed, prompt_id)).sample(rest, min(k, len(candidates)) - 1)] if k else []


def _prompt_seed(seed: int, prompt_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}/{prompt_id}".encode(), digest_size=8).digest(), "big")


@dataclass
class Selection:
    best: int | None  # argmax over scored candidates; None when none is scored
    random: int | None  # the matched random pick among the same candidates
    kept: list[int]  # what goes to SFT: up to top_k (and ties) at least min_reward, best first; or as many random ones
    pair: tuple[int, int] | None  # (chosen, rejected) for DPO
    identical: bool  # every candidate is the same text: nothing to choose between
    no_pair: str = ""  # why there is no pair: unscored, single, identical, margin, min_reward


def select(rewards: list[float | None], texts: list, cfg: SelectConfig, prompt_id: str) -> Selection:
    """Select among one prompt's candidates; ``texts`` are compared to flag identical ones."""
    order = ranking(rewards)
    identical = len(set(texts)) == 1 and len(texts) > 1
    if not order:
        return Selection(None, None, [], None, identical, "unscored")
    good = [i for i in order if cfg.min_reward is None or rewards[i] >= cfg.min_reward]
    top = good[: cfg.top_k]
    if cfg.keep_ties:
        top += [i for i in good[cfg.top_k :] if rewards[i] == rewards[order[0]] and texts[i] not in {texts[j] for j in top}]
    # the control keeps as many candidates of the same prompts, drawn from all scored ones
    kept = top if cfg.pick == "best" else random_indices(cfg.seed, prompt_id, sorted(order), len(top))
    selection = Selection(
        best=order[0],
        random=random_index(cfg.seed, prompt_id, sorted(order)),
        kept=kept,
        pair=None,
        identical=identical,
    )
    chosen, rejected = order[0], order[-1]
    if len(order) < 2:
        selection.no_pair = "single"
    elif texts[chosen] == texts[rejected]:
        selection.no_pair = "identical"
    elif rewards[chosen] - rewards[rejected] <= 0 or rewards[chosen] - rewards[rejected] < cfg.min_margin:
        selection.no_pair = "margin"
    elif chosen not in good:
        selection.no_pair = "min_reward"
    else:
        selection.pair = (chosen, rejected)
    return selection


def select_group(group: list[dict], cfg: SelectConfig) -> Selection:
    """:func:`select` over one prompt's ``candidates.jsonl`` lines."""
    texts = [tuple(m["content"] for m in line["messages"]) for line in group]
    return select([line["reward"] for line in group], texts, cfg, group[0]["prompt_id"])


def mark_selected(group: list[dict]) -> None:
    """Flag the best-of-N candidate of one prompt's candidate lines (``selected``)."""
    order = ranking([line["reward"] for line in group])
    best = order[0] if order else None
    for line in group:
        line["selected"] = line["index"] == best


def summarize(groups: list[list[dict]], selections: list[Selection]) -> dict:
    """Mean rewards of all candidates, the random pick and the selected one, overall, per category
    and per scorer (each scorer's own value; ``failed``: candidates whose check raised), and the mean
    reply length (tokens over all turns) of the same three: a lift that comes with much longer
    replies may be the reward model's length bias.

    Means are over the prompts that have a scored candidate, the same prompts for all three.
    """

    def all_random_best(values: list[float], group: list[dict], selection: Selection) -> tuple[float, float, float]:
        scored = [value for value, line in zip(values, group) if line["reward"] is not None]
        return sum(scored) / len(scored), values[selection.random], values[selection.best]

    rows: dict[str, list] = {}
    lengths = []
    for group, selection in zip(groups, selections):
        if selection.best is None:
            continue
        row = all_random_best([line["reward"] for line in group], group, selection)
        rows.setdefault(group[0]["category"], []).append(row)
        tokens = [sum(turn["tokens"] for turn in line["turns"]) for line in group]
        lengths.append(all_random_best(tokens, group, selection))

    def means(values: list, names=("mean_reward_all", "mean_reward_random", "mean_reward_selected")) -> dict:
        columns = [sum(column) / len(column) if column else None for column in zip(*values)] or [None] * 3
        return dict(zip(names, columns))

    overall = means([row for values in rows.values() for row in values])
    names = sorted({name for group in groups for line in group for name in line.get("scores", {})})
    per_scorer = {}
    for name in names:
        scorer_rows = []
        for group, selection in zip(groups, selections):
            values = [line.get("scores", {}).get(name) for line in group]
            present = [v for v, line in zip(values, group) if v is not None and line["reward"] is not None]
            if selection.best is not None and present and None not in (values[selection.random], values[selection.best]):
                scorer_rows.append((sum(present) / len(present), values[selection.random], values[selection.best]))
        per_scorer[name] = {
            "prompts": len(scorer_rows),
            **means(scorer_rows, ("mean_all", "mean_random", "mean_selected")),
            "failed": sum(name in line.get("errors", {}) for group in groups for line in group),
        }
    lift = None if overall["mean_reward_selected"] is None else overall["mean_reward_selected"] - overall["mean_reward_random"]
    return {
        "prompts": len(groups),
        "candidates": sum(len(group) for group in groups),
        "n": max((len(group) for group in groups), default=0),
        **overall,
        "lift_over_random": lift,
        **means(lengths, ("mean_tokens_all", "mean_tokens_random", "mean_tokens_selected")),
        "scored_prompts": sum(len(values) for values in rows.values()),
        "unscored_candidates": sum(line["reward"] is None for group in groups for line in group),
        "identical_prompts": sum(s.identical for s in selections),
        "identical_prompt_ids": [g[0]["prompt_id"] for g, s in zip(groups, selections) if s.identical],
        "per_scorer": per_scorer,
        "per_category": {category: {"prompts": len(values), **means(values)} for category, values in sorted(rows.items())},
    }


def format_summary(stats: dict, path: Path) -> str:
    def num(value):
        return "-" if value is None else f"{value:+.3f}"

    lines = [
        f"{path}: {stats['prompts']} prompts, {stats['candidates']} candidates"
        f" ({stats['identical_prompts']} prompts with all candidates identical, {stats['unscored_candidates']} unscored)",
        f"mean reward: all {num(stats['mean_reward_all'])}, random pick {num(stats['mean_reward_random'])}, "
        f"selected {num(stats['mean_reward_selected'])} (lift over random {num(stats['lift_over_random'])})",
    ]
    if stats.get("mean_tokens_selected") is not None:  # absent from runs written before it was counted
        lines.append(
            f"mean reply tokens: all {stats['mean_tokens_all']:.0f}, random pick {stats['mean_tokens_random']:.0f}, "
            f"selected {stats['mean_tokens_selected']:.0f}"
        )
    if len(stats.get("per_scorer", {})) > 1 or any(row["failed"] for row in stats.get("per_scorer", {}).values()):
        width = max(len(name) for name in stats["per_scorer"]) + 2
        lines.append(f"{'scorer':<{width}}prompts      all   random selected  failed")
        for name, row in stats["per_scorer"].items():
            lines.append(
                f"{name:<{width}}{row['prompts']:>7} {num(row['mean_all']):>8} "
                f"{num(row['mean_random']):>8} {num(row['mean_selected']):>8} {row['failed']:>7}"
            )
    if stats["per_category"]:
        width = max(len(c) for c in stats["per_category"]) + 2
        lines.append(f"{'category':<{width}}prompts      all   random selected")
        for category, row in sorted(stats["per_category"].items()):
            lines.append(
                f"{category or '-':<{width}}{row['prompts']:>7} {num(row['mean_reward_all']):>8} "
                f"{num(row['mean_reward_random']):>8} {num(row['mean_reward_selected']):>8}"
            )
    lines.append(f"wrote {stats['sft_written']} SFT conversations, {stats['pairs_written']} pairs")
    for stage, values in stats["timings"].items():
        rate = values.get("tokens_per_second") or values.get("conversations_per_second")
        unit = "tokens/s" if "tokens_per_second" in values else "conversations/s"
        lines.append(f"{stage}: {values['seconds']:.1f} s" + (f", {rate:.1f} {unit}" if rate else ""))
    return "\n".join(lines)
