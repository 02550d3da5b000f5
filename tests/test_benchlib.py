"""The benchmarks' arithmetic (never their timings): ratios over interleaved rounds."""

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

import benchlib  # noqa: E402


def test_ratio_is_the_median_over_rounds_with_its_spread():
    r = benchlib.ratio([300, 420, 400], [200, 200, 250])
    assert r["ratios"] == [1.5, 2.1, 1.6] and r["median"] == 1.6 and (r["min"], r["max"]) == (1.5, 2.1)
    assert not r["inconclusive"] and benchlib.format_ratio(r).startswith("**1.60×**")


def test_rounds_that_disagree_in_sign_are_inconclusive():
    r = benchlib.ratio([300, 140, 400], [200, 200, 250])
    assert r["inconclusive"] and benchlib.format_ratio(r).startswith("inconclusive")


def test_interleave_alternates_contenders_round_by_round():
    order = []
    results = benchlib.interleave(["a", "b"], 3, lambda name, i: order.append((name, i)) or {"x": i})
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert [r["x"] for r in results["b"]] == [0, 1, 2] and all("load" in r for r in results["a"])


def test_write_section_replaces_only_its_own_section(tmp_path):
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\n## Sampling\n\nold\n\n## Training\n\nkept\n")
    benchlib.write_section(doc, "## Sampling", "## Sampling\n\nnew\n")
    benchlib.write_section(doc, "## Scoring", "## Scoring\n\nadded\n")
    assert doc.read_text() == "# Benchmarks\n\n## Sampling\n\nnew\n\n## Training\n\nkept\n\n## Scoring\n\nadded\n"


def test_rounds_table_lists_each_round_with_its_load_and_ratio():
    results = {"a": [{"load": 1.0}, {"load": 2.0}], "b": [{"load": 1.5}, {"load": 0.5}]}
    tps = {"a": [300.0, 420.0], "b": [200.0, 200.0]}
    assert benchlib.rounds_table(results, tps) == [
        "| round | a tokens/s (load) | b tokens/s (load) |",
        "| ---: | ---: | ---: |",
        "| 1 | 300 (1.0) | 200 (1.5) |",
        "| 2 | 420 (2.0) | 200 (0.5) |",
    ]
    with_ratio = benchlib.rounds_table(results, tps, benchlib.ratio(tps["a"], tps["b"]))
    assert with_ratio[0].endswith("| b tokens/s (load) | a / b |") and with_ratio[1] == "| ---: | ---: | ---: | ---: |"
    assert with_ratio[2:] == ["| 1 | 300 (1.0) | 200 (1.5) | 1.50 |", "| 2 | 420 (2.0) | 200 (0.5) | 2.10 |"]


def test_score_dtype_comparison_counts_flips_gaps_and_the_reward_lost():
    import bench_score_dtype

    groups = [[{"index": k} for k in range(3)] for _ in range(2)]
    exact = [1.0, 0.95, 0.1, 0.5, 0.2, 0.0]  # prompt 1: best 0 by 0.05; prompt 2: best 0 by 0.3
    low = [0.96, 0.99, 0.1, 0.52, 0.18, 0.01]  # bf16 moves prompt 1's pick to candidate 1
    result = bench_score_dtype.compare(groups, {"float32": exact, "bfloat16": low})
    assert (result["prompts"], result["candidates"], result["n"]) == (2, 6, 3)
    assert abs(result["difference_max"] - 0.04) < 1e-9
    best_of_3 = result["best_of_3"]
    assert best_of_3["flips"] == 1 and best_of_3["gaps_below_max_difference"] == 0
    assert abs(best_of_3["float32_reward_lost_mean"] - 0.025) < 1e-9 and abs(best_of_3["float32_reward_lost_max"] - 0.05) < 1e-9
    assert result["best_of_2"]["flips"] == 1  # the first two candidates of each prompt
