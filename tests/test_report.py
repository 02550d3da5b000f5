"""Report: the best-of-N estimator against brute force, the KL bound, and what its page and plots show."""

import base64
import html
import itertools
import json
import math
import random
import re
import statistics

import pytest

from rmkit.atomic_files import write_json
from rmkit.config.sections import SelectConfig
from rmkit.errors import MissingPath, RecordError
from rmkit.reports import run_report
from rmkit.reports.run_report import write_report
from rmkit.sampling.runs import CandidateLog
from rmkit.selection.best_of_n import best_of_n_curve, best_of_n_table, expected_max, kl_bound, report_ns
from rmkit.selection.select import mark_selected, select, summarize

PNG = b"\x89PNG\r\n\x1a\n"
DPI = 110  # what the report saves its figures at


# --- best-of-N statistics --------------------------------------------------------------


def brute_force_expected_max(rewards, k):
    return statistics.fmean(max(subset) for subset in itertools.combinations(rewards, k))


@pytest.mark.parametrize("k", range(1, 8))
def test_expected_max_equals_the_mean_over_all_k_subsets(k):
    rewards = [random.Random(0).gauss(0, 1) for _ in range(7)] + [0.5, 0.5]  # ties included
    rewards = random.Random(1).sample(rewards, len(rewards))
    assert expected_max(rewards, k) == pytest.approx(brute_force_expected_max(rewards, k))


def test_curve_starts_at_the_mean_and_ends_at_the_max():
    prompts = [[random.Random(p).uniform(-2, 2) for _ in range(8)] for p in range(5)]
    curve = best_of_n_curve(prompts, max_n=8)
    assert len(curve) == 8
    assert curve[0] == pytest.approx(statistics.fmean(statistics.fmean(r) for r in prompts))
    assert curve[-1] == pytest.approx(statistics.fmean(max(r) for r in prompts))
    assert all(a <= b + 1e-12 for a, b in zip(curve, curve[1:]))


def test_best_of_n_table_rows():
    assert report_ns(8) == [1, 2, 4, 8] and report_ns(6) == [1, 2, 4, 6] and report_ns(1) == [1]
    curve = best_of_n_curve([[0.0, 1.0, 2.0, 3.0]], max_n=4)  # 1.5, 7/3, 2.75, 3 (by hand over the k-subsets)
    table = best_of_n_table(curve)
    assert [row["n"] for row in table] == [1, 2, 4]
    assert [row["expected_best"] for row in table] == pytest.approx([1.5, 7 / 3, 3.0])
    assert [row["lift"] for row in table] == pytest.approx([0.0, 7 / 3 - 1.5, 1.5])
    assert [row["kl_bound"] for row in table] == pytest.approx([0.0, math.log(2) - 0.5, math.log(4) - 0.75])


def test_curve_averages_the_prompts_that_have_k_candidates():
    curve = best_of_n_curve([[0.0, 1.0, 2.0], [10.0]], max_n=5)
    assert curve == pytest.approx([(1.0 + 10.0) / 2, brute_force_expected_max([0.0, 1.0, 2.0], 2), 2.0])
    assert best_of_n_curve([[0.0, 1.0, 2.0]], max_n=2) == pytest.approx([1.0, 5 / 3])


def test_kl_bound():
    assert kl_bound(1) == 0.0
    assert kl_bound(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_bound(64) == pytest.approx(math.log(64) - 63 / 64)
    assert all(kl_bound(n) < kl_bound(n + 1) for n in range(1, 100))


# --- the report ------------------------------------------------------------------------


def write_sampling_run(run_dir, n_prompts=6, n=4):
    """A synthetic sample-and-score run folder: candidates.jsonl and stats.json as the sampler writes them."""
    rng = random.Random(0)
    groups = []
    for p in range(n_prompts):
        prompt = [{"role": "user", "content": f"question {p}"}]
        category = ["writing", "math", "coding"][p % 3]
        groups.append([candidate_line(f"q{p}", category, k, n, prompt, rng.gauss(0, 1)) for k in range(n)])
    groups[0][1]["reward"] = None  # one candidate the reward model could not score
    selections = []
    for group in groups:
        mark_selected(group)
        texts = [line["messages"][-1]["content"] for line in group]
        selections.append(select([line["reward"] for line in group], texts, SelectConfig(), group[0]["prompt_id"]))
        CandidateLog(run_dir / "candidates.jsonl").append(group)
    write_json(run_dir / "stats.json", summarize(groups, selections))
    return [line for group in groups for line in group if line["reward"] is not None]


def candidate_line(prompt_id, category, index, n, prompt, reward):
    """One line of candidates.jsonl (layout in rmkit.sampling.generate)."""
    reply = f"reply {prompt_id}.{index} <b>&amp;</b>"  # markup that the page must escape
    turn = {
        "reply": reply,
        "tokens": 5,
        "finish_reason": "stop",
        "prompt_tokens": 9,
        "dropped_turns": 0,
        "cut_tokens": 0,
        "reward": reward,
    }
    return {
        "prompt_id": prompt_id,
        "category": category,
        "index": index,
        "n": n,
        "per_turn": "independent",
        "messages": [*prompt, {"role": "assistant", "content": reply}],
        "turns": [turn],
        "best_per_turn": [],
        "reward": reward,
        "selected": False,
        "extra": {},
        "source": "prompts.jsonl:1",
    }


def write_training_run(run_dir):
    """A synthetic training output folder: metrics.jsonl and summary.json."""
    logs = [{"step": s, "loss": 0.7 - 0.005 * s, "lr": 1e-4, "epoch": s / 100} for s in range(10, 110, 10)]
    evals = [{"step": s, "eval_loss": 0.69 - 0.002 * s, "eval_accuracy": 0.5 + 0.002 * s} for s in (50, 100)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in logs + evals))
    (run_dir / "summary.json").write_text(json.dumps({"eval_accuracy": 0.7, "steps": 100, "data": {"read": 10, "kept": 9}}))


def embedded_images(page):
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header chunk."""
    assert data.startswith(PNG) and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def figures(monkeypatch):
    """The figures the report draws, by the file each is saved to."""
    drawn, embed = {}, run_report._embed

    def keep(fig, path):
        drawn[path.name] = fig
        return embed(fig, path)

    monkeypatch.setattr(run_report, "_embed", keep)
    return drawn


def assert_page_embeds_the_files(page, folder, names):
    """The page carries exactly these PNG files, in this order."""
    assert embedded_images(page) == [base64.b64encode((folder / name).read_bytes()).decode("ascii") for name in names]


def assert_drawn_at_size(figures, folder):
    for name, fig in figures.items():
        width, height = fig.get_size_inches()
        assert png_size((folder / name).read_bytes()) == (round(width * DPI), round(height * DPI)), name


def series(ax) -> dict[str, list]:
    """Each plotted line's y values, by its legend label."""
    return {line.get_label(): list(line.get_ydata()) for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_sampling_report(tmp_path, figures):
    lines = write_sampling_run(tmp_path)
    page_path = write_report(tmp_path)
    assert page_path == tmp_path / "report" / "report.html"
    page = page_path.read_text()
    out = tmp_path / "report"
    assert_page_embeds_the_files(page, out, ["reward_histogram.png", "best_of_n.png", "categories.png"])
    assert_drawn_at_size(figures, out)
    ranked = sorted(lines, key=lambda r: r["reward"])
    for record in ranked[:3] + ranked[-3:]:
        assert f"{record['reward']:.4f}" in page
    best_reply = ranked[-1]["messages"][-1]["content"]
    assert html.escape(best_reply) in page and best_reply not in page
    assert f"{ranked[3]['reward']:.4f}" not in page  # only the top and bottom 3 of 23 scored

    # the histogram counts the 23 scored candidates and the 6 selected, one per prompt
    legend = [text.get_text() for text in figures["reward_histogram.png"].axes[0].get_legend().get_texts()]
    assert legend == ["all candidates (n=23)", "selected (n=6)"]
    # the best-of-N curve is the table's, point for point
    table = json.loads((out / "best_of_n.json").read_text())
    per_prompt = {}
    for record in lines:
        per_prompt.setdefault(record["prompt_id"], []).append(record["reward"])
    curve = best_of_n_curve(list(per_prompt.values()), max_n=4)
    assert [row["n"] for row in table] == [1, 2, 4]
    assert all(got == pytest.approx(want) for got, want in zip(table, best_of_n_table(curve), strict=True))
    assert series(figures["best_of_n.png"].axes[0])["expected best-of-N reward"] == pytest.approx(curve)
    assert f"{table[-1]['lift']:.4g}" in page  # the same rows on the page
    # one group of bars per category, at the means stats.json holds
    stats = json.loads((tmp_path / "stats.json").read_text())
    ax = figures["categories.png"].axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["coding", "math", "writing"]
    heights = [bar.get_height() for container in ax.containers for bar in container]  # all, random, selected
    means = [
        stats["per_category"][c][f"mean_reward_{s}"] for s in ("all", "random", "selected") for c in ("coding", "math", "writing")
    ]
    assert heights == pytest.approx(means)


def test_training_report(tmp_path, figures):
    write_training_run(tmp_path)
    page = write_report(tmp_path).read_text()
    out = tmp_path / "report"
    assert_page_embeds_the_files(page, out, ["loss.png", "accuracy.png"])
    assert_drawn_at_size(figures, out)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = series(figures["loss.png"].axes[0])
    assert losses["loss"] == pytest.approx([m["loss"] for m in metrics if "loss" in m])
    assert losses["eval_loss"] == pytest.approx([m["eval_loss"] for m in metrics if "eval_loss" in m])
    assert series(figures["accuracy.png"].axes[0]) == {"eval_accuracy": pytest.approx([0.6, 0.7])}
    assert "<tr><th>steps</th><td>100</td></tr>" in page and "Best-of-N" not in page  # summary.json, as a table


def test_a_training_run_still_writing_is_reported_without_its_torn_last_line(tmp_path, figures):
    """`rmkit report` read metrics.jsonl line by line with json.loads: a line cut short by a
    running or killed training ended in a JSONDecodeError traceback."""
    write_training_run(tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 110, "loss": 0.1')
    write_report(tmp_path)
    assert series(figures["loss.png"].axes[0])["loss"][-1] == pytest.approx(0.2)  # step 100's, not the torn step 110's
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('\n{"step": 120, "loss": 0.1}\n')  # a damaged line with lines after it is named
    with pytest.raises(RecordError, match=r"metrics\.jsonl:13: damaged line with lines after it"):
        write_report(tmp_path)


def test_report_of_a_folder_with_both_runs_via_the_command(tmp_path, capsys):
    from rmkit.cli import main

    write_sampling_run(tmp_path)
    write_training_run(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "report" / "report.html")
    assert len(embedded_images((tmp_path / "report" / "report.html").read_text())) == 5


def test_folder_without_runs_is_an_error(tmp_path):
    with pytest.raises(MissingPath, match="no candidates.jsonl"):
        write_report(tmp_path)


def test_training_without_held_out_set_has_no_accuracy_plot(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.69, "lr": 1e-4, "epoch": 0.1}) + "\n")
    write_report(tmp_path)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["loss.png", "report.html"]


def test_sampled_but_unscored_run(tmp_path):
    group = [candidate_line("q0", "", k, 2, [{"role": "user", "content": "hi"}], None) for k in range(2)]
    CandidateLog(tmp_path / "candidates.jsonl").append(group)
    page = write_report(tmp_path).read_text()
    assert "No scored candidates yet: run <code>rmkit score</code>" in page and embedded_images(page) == []
