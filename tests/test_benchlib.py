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
