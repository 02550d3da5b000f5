"""Plots and one self-contained HTML page for a sample-and-score run, a training run, or both.

The kind of run is read from the files present: ``candidates.jsonl`` (+ ``stats.json``)
for sampling, ``metrics.jsonl`` (+ ``summary.json``) for training. Everything goes to
``RUN_DIR/report/``: one PNG per plot and ``report.html`` with the same images embedded,
so the page can be mailed or opened anywhere on its own; a sampling run also gets
``best_of_n.json`` (expected best reward, lift and KL bound per N).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from rmkit.conversation import Conversation, message_text
from rmkit.exports import write_atomic, write_json

N_EXAMPLES = 3  # highest- and lowest-scored candidates shown on the page


# --- best-of-N statistics --------------------------------------------------------------


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


# --- reading run folders ---------------------------------------------------------------


@dataclass
class ScoredCandidate:
    prompt_id: str
    category: str
    reward: float
    conversation: Conversation  # the prompt and this candidate's replies
    selected: bool  # the best of its prompt's N


def _candidate(line: dict) -> ScoredCandidate:
    """One ``candidates.jsonl`` line (layout in rmkit.sampling.generate); the one place that knows it."""
    return ScoredCandidate(str(line["prompt_id"]), line["category"], line["reward"], line["messages"], line["selected"])


def read_candidates(run_dir: Path) -> list[ScoredCandidate]:
    """The scored candidates of a run folder, read as the sampler reads its own log."""
    from rmkit.sampling.runs import RunFolder

    return [_candidate(line) for group in RunFolder(run_dir).groups() for line in group if line["reward"] is not None]


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def rewards_by_prompt(candidates: list[ScoredCandidate]) -> list[list[float]]:
    groups: dict[str, list[float]] = {}
    for c in candidates:
        groups.setdefault(c.prompt_id, []).append(c.reward)
    return list(groups.values())


def category_means(stats: dict) -> dict[str, dict[str, float]]:
    """``stats.json``'s per-category means: category → {"all", "random", "selected"}."""
    return {
        category: {series: values[f"mean_reward_{series}"] for series in ("all", "random", "selected")}
        for category, values in stats.get("per_category", {}).items()
    }


# --- plots -----------------------------------------------------------------------------


def _figure(width: float = 6.4, height: float = 4.0):
    # A bare Figure renders with Agg and leaves pyplot's global state (and backend) alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def plot_reward_histogram(candidates: list[ScoredCandidate]):
    import numpy as np

    fig, ax = _figure()
    rewards = [c.reward for c in candidates]
    selected = [c.reward for c in candidates if c.selected]
    bins = np.histogram_bin_edges(rewards, bins=min(40, max(10, len(rewards) // 5)))
    # Densities, so the N-times-smaller selected set is comparable in shape.
    ax.hist(rewards, bins=bins, density=True, alpha=0.55, label=f"all candidates (n={len(rewards)})")
    if selected:
        ax.hist(selected, bins=bins, density=True, alpha=0.55, label=f"selected (n={len(selected)})")
    ax.set(xlabel="reward", ylabel="density", title="Reward distribution")
    ax.legend()
    return fig


def plot_best_of_n(curve: list[float]):
    ns = list(range(1, len(curve) + 1))
    fig, ax = _figure()
    ax.plot(ns, curve, marker="o", label="expected best-of-N reward")
    ax.axhline(curve[0], color="gray", linestyle="--", label="random pick (mean reward)")
    ax.set_xscale("log", base=2)
    ticks = report_ns(len(curve))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set(xlabel="N (candidates per prompt)", ylabel="reward", title="Best-of-N")
    ax.legend(loc="lower right")
    # The same ticks read as the KL a best-of-N policy may drift from the sampler.
    top = ax.twiny()
    top.set_xscale("log", base=2)
    top.set_xlim(ax.get_xlim())
    top.set_xticks(ticks, [f"{kl_bound(t):.2f}" for t in ticks])
    top.minorticks_off()
    ax.minorticks_off()
    top.set_xlabel("KL bound log N − (N−1)/N (nats)")
    return fig


def plot_scorer_curves(name: str, curves: dict):
    """One scorer's expected value under best-of-n (selected by the run's reward, random, the
    scorer itself) against the KL bound, with 95% bootstrap bands over prompts."""
    fig, ax = _figure()
    labels = {"selected": "best of n by the run's reward", "random": "random pick", "oracle": f"best of n by {name} (oracle)"}
    for series, rows in curves.items():
        x = [row["kl_bound"] for row in rows]
        ax.plot(x, [row["mean"] for row in rows], marker="o", label=labels[series])
        ax.fill_between(x, [row["low"] for row in rows], [row["high"] for row in rows], alpha=0.2)
    ax.set_xlabel("KL bound of best-of-n (nats): log n - (n - 1)/n")
    ax.set_ylabel(f"expected {name}")
    ax.set_title(f"{name}: best-of-n curves, 95% bootstrap intervals over prompts")
    ax.legend()
    return fig


def plot_categories(means: dict[str, dict[str, float]]):
    import numpy as np

    categories = sorted(means)
    fig, ax = _figure(max(6.4, 0.9 * len(categories) + 2))
    x = np.arange(len(categories))
    width = 0.27
    labels = {"all": "all candidates", "random": "random pick", "selected": "selected (best of N)"}
    for i, (series, label) in enumerate(labels.items()):
        ax.bar(x + (i - 1) * width, [means[c][series] for c in categories], width, label=label)
    ax.set_xticks(x, [c or "(none)" for c in categories], rotation=30, ha="right")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set(ylabel="mean reward", title="Mean reward per category")
    fig.legend(loc="outside lower center", ncols=3)  # below the axes: tall bars leave no free corner
    return fig


def plot_metrics(metrics: list[dict], keys: list[str], ylabel: str):
    """Each of ``keys`` that the logs have, against the step."""
    fig, ax = _figure()
    for key in keys:
        points = [(m["step"], m[key]) for m in metrics if key in m]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, label=key)
    ax.set(xlabel="step", ylabel=ylabel, title=ylabel.capitalize())
    ax.legend()
    return fig


# --- the page --------------------------------------------------------------------------


def _embed(fig, path: Path) -> str:
    """Save ``fig`` to ``path`` and return it as an ``<img>`` with a base64 data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    path.write_bytes(buffer.getvalue())
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'


def _table(values: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_value(v))}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>"


def _rows(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(key)}</th>" for key in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_value(v))}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def _example(c: ScoredCandidate) -> str:
    turns = "".join(
        f'<div class="{html.escape(m["role"])}"><b>{html.escape(m["role"])}</b><pre>{html.escape(message_text(m))}</pre></div>'
        for m in c.conversation
    )
    where = f"prompt {c.prompt_id}" + (f" ({c.category})" if c.category else "")
    return f'<div class="example"><p>reward <b>{c.reward:.4f}</b> · {html.escape(where)}</p>{turns}</div>'


def _sampling_sections(run_dir: Path, out: Path) -> list[tuple[str, str]]:
    candidates = read_candidates(run_dir)
    if not candidates:
        return [("Sampling", "<p>No scored candidates yet: run <code>rmkit score</code> on this folder.</p>")]
    stats = _json(run_dir / "stats.json")
    per_prompt = rewards_by_prompt(candidates)
    curve = best_of_n_curve(per_prompt, max(map(len, per_prompt)))
    table = best_of_n_table(curve)
    write_json(out / "best_of_n.json", table)
    ranked = sorted(candidates, key=lambda c: c.reward, reverse=True)
    sections = [
        ("Sampling summary", _table({k: v for k, v in stats.items() if not isinstance(v, (dict, list))})),
        ("Rewards", _embed(plot_reward_histogram(candidates), out / "reward_histogram.png")),
        ("Best-of-N", _embed(plot_best_of_n(curve), out / "best_of_n.png") + _rows(table)),
    ]
    from rmkit.sampling.runs import RunFolder

    groups = RunFolder(run_dir).groups()
    if any(len(group[0].get("scores", {})) > 1 for group in groups[:1]):  # several scorers: each one's curves
        curves = scorer_curves(groups)
        write_json(out / "scorer_curves.json", curves)
        for name, series in curves.items():
            rows = [{"n": s["n"], "kl_bound": s["kl_bound"], **{k: curve[i]["mean"] for k, curve in series.items()}}
                    for i, s in enumerate(series["selected"])]
            sections.append((f"Best-of-n by scorer: {name}", _embed(plot_scorer_curves(name, series), out / f"curves_{name}.png") + _rows(rows)))
    if means := category_means(stats):
        sections.append(("Per category", _embed(plot_categories(means), out / "categories.png")))
    sections += [
        (f"Highest-scored {N_EXAMPLES}", "".join(map(_example, ranked[:N_EXAMPLES]))),
        (f"Lowest-scored {N_EXAMPLES}", "".join(map(_example, ranked[::-1][:N_EXAMPLES]))),
    ]
    return sections


def _training_sections(run_dir: Path, out: Path) -> list[tuple[str, str]]:
    metrics = _jsonl(run_dir / "metrics.jsonl")
    summary = _json(run_dir / "summary.json")
    sections = [("Training summary", _table(summary))] if summary else []
    for name, keys in (("loss", ["loss", "eval_loss"]), ("accuracy", ["eval_accuracy"])):
        if any(key in m for m in metrics for key in keys):  # e.g. no accuracy without a held-out set
            sections.append((name.capitalize(), _embed(plot_metrics(metrics, keys, name), out / f"{name}.png")))
    return sections


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
img {{ max-width: 100%; }} table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; }}
.example {{ border: 1px solid #ccc; border-radius: 6px; padding: 0.5rem 1rem; margin: 1rem 0; }}
pre {{ white-space: pre-wrap; margin: 0.2rem 0 0.6rem; }} .assistant {{ background: #f4f8ff; }}
</style></head><body><h1>{title}</h1>
{body}
</body></html>
"""


def write_report(run_dir: str | Path) -> Path:
    """Write the plots and ``report.html`` under ``run_dir/report/``; return the page's path."""
    run_dir = Path(run_dir)
    sampling, training = (run_dir / "candidates.jsonl").exists(), (run_dir / "metrics.jsonl").exists()
    if not (sampling or training):
        raise FileNotFoundError(f"{run_dir}: no candidates.jsonl (sampling run) or metrics.jsonl (training run)")
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    sections = (_sampling_sections(run_dir, out) if sampling else []) + (_training_sections(run_dir, out) if training else [])
    body = "\n".join(f"<h2>{html.escape(title)}</h2>\n{content}" for title, content in sections)
    page = out / "report.html"
    write_atomic(page, PAGE.format(title=html.escape(f"rmkit report: {run_dir.resolve().name}"), body=body))
    return page


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a sample-and-score run folder and/or a training output folder")


def run(args: argparse.Namespace) -> int:
    print(write_report(args.run_dir))
    return 0
