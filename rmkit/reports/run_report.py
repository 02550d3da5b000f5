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
from pathlib import Path

from rmkit.atomic_files import write_atomic, write_json
from rmkit.conversation import message_text
from rmkit.errors import MissingPath
from rmkit.reports.report_plots import plot_best_of_n, plot_categories, plot_metrics, plot_reward_histogram, plot_scorer_curves
from rmkit.sampling.candidates import CandidateRecord
from rmkit.selection.best_of_n import best_of_n_curve, best_of_n_table, scorer_curves

N_EXAMPLES = 3  # highest- and lowest-scored candidates shown on the page


# --- reading run folders ---------------------------------------------------------------


def read_candidates(run_dir: Path) -> list[CandidateRecord]:
    """The scored candidates of a run folder, read as the sampler reads its own log."""
    from rmkit.sampling.runs import RunFolder

    return [line for group in RunFolder(run_dir).groups() for line in group if line["reward"] is not None]


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def rewards_by_prompt(candidates: list[CandidateRecord]) -> list[list[float]]:
    groups: dict[str, list[float]] = {}
    for c in candidates:
        groups.setdefault(c["prompt_id"], []).append(c["reward"])
    return list(groups.values())


def category_means(stats: dict) -> dict[str, dict[str, float]]:
    """``stats.json``'s per-category means: category → {"all", "random", "selected"}."""
    return {
        category: {series: values[f"mean_reward_{series}"] for series in ("all", "random", "selected")}
        for category, values in stats.get("per_category", {}).items()
    }


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


def _example(c: CandidateRecord) -> str:
    turns = "".join(
        f'<div class="{html.escape(m["role"])}"><b>{html.escape(m["role"])}</b><pre>{html.escape(message_text(m))}</pre></div>'
        for m in c["messages"]
    )
    where = f"prompt {c['prompt_id']}" + (f" ({c['category']})" if c.get("category") else "")
    return f'<div class="example"><p>reward <b>{c["reward"]:.4f}</b> · {html.escape(where)}</p>{turns}</div>'


def _sampling_sections(run_dir: Path, out: Path) -> list[tuple[str, str]]:
    candidates = read_candidates(run_dir)
    if not candidates:
        return [("Sampling", "<p>No scored candidates yet: run <code>rmkit score</code> on this folder.</p>")]
    stats = _json(run_dir / "stats.json")
    per_prompt = rewards_by_prompt(candidates)
    from rmkit.sampling.runs import RunFolder

    stale = RunFolder(run_dir).stale_note()
    curve = best_of_n_curve(per_prompt, max(map(len, per_prompt)))
    table = best_of_n_table(curve)
    write_json(out / "best_of_n.json", table)
    ranked = sorted(candidates, key=lambda c: c["reward"], reverse=True)
    rewards, selected = [c["reward"] for c in candidates], [c["reward"] for c in candidates if c["selected"]]
    sections = [
        (
            "Sampling summary",
            (f'<p class="stale"><b>Stale:</b> {html.escape(stale)}</p>' if stale else "")
            + _table({k: v for k, v in stats.items() if not isinstance(v, (dict, list))}),
        ),
        ("Rewards", _embed(plot_reward_histogram(rewards, selected), out / "reward_histogram.png")),
        ("Best-of-N", _embed(plot_best_of_n(curve), out / "best_of_n.png") + _rows(table)),
    ]
    groups = RunFolder(run_dir).groups()
    if any(len(group[0].get("scores", {})) > 1 for group in groups[:1]):  # several scorers: each one's curves
        curves = scorer_curves(groups)
        write_json(out / "scorer_curves.json", curves)
        for name, series in curves.items():
            rows = [
                {"n": s["n"], "kl_bound": s["kl_bound"], **{k: curve[i]["mean"] for k, curve in series.items()}}
                for i, s in enumerate(series["selected"])
            ]
            sections.append(
                (
                    f"Best-of-n by scorer: {name}",
                    _embed(plot_scorer_curves(name, series), out / f"curves_{name}.png") + _rows(rows),
                )
            )
    if means := category_means(stats):
        sections.append(("Per category", _embed(plot_categories(means), out / "categories.png")))
    sections += [
        (f"Highest-scored {N_EXAMPLES}", "".join(map(_example, ranked[:N_EXAMPLES]))),
        (f"Lowest-scored {N_EXAMPLES}", "".join(map(_example, ranked[::-1][:N_EXAMPLES]))),
    ]
    return sections


def _training_sections(run_dir: Path, out: Path) -> list[tuple[str, str]]:
    from rmkit.training.metrics_log import read_metrics

    metrics = read_metrics(run_dir / "metrics.jsonl")
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
        raise MissingPath(f"{run_dir}: no candidates.jsonl (sampling run) or metrics.jsonl (training run)")
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
    from rmkit import logs
    from rmkit.sampling.runs import RunFolder

    print(write_report(args.run_dir))
    if note := RunFolder(args.run_dir).stale_note():
        logs.note(note, warning=True)
    return 0
