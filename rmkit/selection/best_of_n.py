"""Best-of-N statistics: the expected best of n candidates (exact, over all n-subsets), its
lift and KL bound, and per-scorer selection curves with bootstrap intervals."""

from __future__ import annotations

import math
import statistics


def expected_max(rewards: list[float], k: int) -> float:
    """Unbiased estimate of E[max of k of these rewards], drawn without replacement.

    With rewards sorted ascending, r_(i) is the maximum of exactly C(i-1, k-1) of the
    C(N, k) k-subsets, so the mean over all subsets is sum_i r_(i) C(i-1, k-1) / C(N, k).
    """
    n = len(rewards)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    subsets = math.comb(n, k)
    # Divide the exact integer binomials first: as floats they overflow for large N.
    return sum(r * (math.comb(i - 1, k - 1) / subsets) for i, r in enumerate(sorted(rewards), 1) if i >= k)


def best_of_n_curve(rewards_per_prompt: list[list[float]], max_n: int) -> list[float]:
    """Expected best-of-k reward for k = 1 .. max_n, averaged over prompts.

    Each k averages the prompts that have at least k candidates; the curve stops at the
    largest candidate count. k = 1 is the mean reward (a random pick).
    """
    largest = min(max_n, max(map(len, rewards_per_prompt)))
    return [
        statistics.fmean(expected_max(rewards, k) for rewards in rewards_per_prompt if len(rewards) >= k)
        for k in range(1, largest + 1)
    ]


def kl_bound(n: int) -> float:
    """Analytic bound on KL(best-of-n || base policy), in nats: log n - (n - 1) / n."""
    return math.log(n) - (n - 1) / n


def report_ns(largest: int) -> list[int]:
    """The N worth a row or a tick: 1, 2, 4, ... up to ``largest``, and ``largest`` itself."""
    return sorted({2**p for p in range(largest.bit_length()) if 2**p <= largest} | {largest})


def best_of_n_table(curve: list[float]) -> list[dict]:
    """Per N of :func:`report_ns`: the expected best reward, its lift over the matched random
    pick (N = 1, the mean reward) and the KL bound of a best-of-N policy."""
    return [
        {"n": n, "expected_best": curve[n - 1], "lift": curve[n - 1] - curve[0], "kl_bound": kl_bound(n)}
        for n in report_ns(len(curve))
    ]


def expected_at_best(keys: list[float], values: list[float], k: int) -> float:
    """Expected ``values`` of the candidate with the highest ``keys`` among k drawn without
    replacement (exact over all k-subsets, as :func:`expected_max`); ties in ``keys`` go to the
    lower index, as selection does."""
    n = len(keys)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    order = sorted(range(n), key=lambda i: (keys[i], -i))  # ascending: the last one is the pick
    subsets = math.comb(n, k)
    return sum(values[i] * (math.comb(j, k - 1) / subsets) for j, i in enumerate(order) if j >= k - 1)


def bootstrap_interval(values: list[float], rounds: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one per prompt)."""
    import random

    rng, n = random.Random(seed), len(values)
    means = sorted(statistics.fmean(rng.choices(values, k=n)) for _ in range(rounds))
    tail = (1 - level) / 2
    return means[int(tail * (rounds - 1))], means[int(round((1 - tail) * (rounds - 1)))]


def selection_curve(prompts: list[dict], selector: str | None, target: str, ns: list[int], rounds: int = 1000) -> list[dict]:
    """Per n: the mean over prompts of the expected ``target`` of the best-of-n by ``selector``
    (None: a random pick), with a 95% bootstrap interval over prompts and the KL bound.

    ``prompts`` holds one ``{name: [value per candidate]}`` per prompt, every candidate scored.
    """
    rows = []
    for n in ns:
        per_prompt = [
            statistics.fmean(p[target]) if selector is None else expected_at_best(p[selector], p[target], n)
            for p in prompts
            if len(p[target]) >= n
        ]
        low, high = bootstrap_interval(per_prompt, rounds)
        rows.append({"n": n, "mean": statistics.fmean(per_prompt), "low": low, "high": high, "kl_bound": kl_bound(n)})
    return rows


def scores_by_prompt(groups: list[list[dict]]) -> list[dict]:
    """Per prompt whose candidates are all scored: ``{name: values}`` for ``reward`` and each scorer."""
    out = []
    for group in groups:
        if any(line["reward"] is None for line in group):
            continue
        names = set.intersection(*(set(line.get("scores", {})) for line in group))
        row = {"reward": [line["reward"] for line in group]}
        row |= {name: [line["scores"][name] for line in group] for name in sorted(names)}
        if all(v is not None for values in row.values() for v in values):
            out.append(row)
    return out


def scorer_curves(groups: list[list[dict]]) -> dict:
    """For each scorer: its expected value under best-of-n by the run's weighted reward
    (``selected``), by a random pick, and by the scorer itself (``oracle``), n = 1, 2, 4, ..., N."""
    prompts = scores_by_prompt(groups)
    if not prompts:
        return {}
    ns = report_ns(min(len(p["reward"]) for p in prompts))
    names = [name for name in prompts[0] if name != "reward"]
    return {
        name: {
            "selected": selection_curve(prompts, "reward", name, ns),
            "random": selection_curve(prompts, None, name, ns),
            "oracle": selection_curve(prompts, name, name, ns),
        }
        for name in names
    }
