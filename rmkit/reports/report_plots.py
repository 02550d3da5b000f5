"""The report's plots, each a bare matplotlib Figure (matplotlib and numpy imported where used)."""

from __future__ import annotations

from rmkit.selection.best_of_n import kl_bound, report_ns


def _figure(width: float = 6.4, height: float = 4.0):
    # A bare Figure renders with Agg and leaves pyplot's global state (and backend) alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def plot_reward_histogram(rewards: list[float], selected: list[float]):
    """Every scored candidate's reward, and the selected ones' (the best of each prompt)."""
    import numpy as np

    fig, ax = _figure()
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
