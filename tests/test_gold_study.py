"""The gold study's quick variant end to end: prompts with IFEval constraints, gold-labelled
sampling, a proxy reward model, an SFT round and the curves (scripts/gold_study.py)."""

import importlib.util
import json

import pytest

from tests.conftest import REPO, shared_data


@pytest.mark.slow
def test_quick_gold_study(tmp_path):
    pytest.importorskip("if_verifiable")
    shared_data("hh_rlhf/helpful-base/test.jsonl.gz")
    spec = importlib.util.spec_from_file_location("gold_study", REPO / "scripts" / "gold_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    result = study.main(["--quick", "--out", str(tmp_path)])

    prompts = [json.loads(line) for line in (tmp_path / "prompts" / "heldout.jsonl").read_text().splitlines()]
    assert len(prompts) == 6 and all(1 <= len(p["instruction_id_list"]) <= 3 for p in prompts)
    train_ids = {json.loads(line)["id"] for line in (tmp_path / "prompts" / "train.jsonl").read_text().splitlines()}
    assert train_ids.isdisjoint(p["id"] for p in prompts)  # split by prompt

    curves = result["curves"]
    assert [row["n"] for row in curves["oracle_gold"]] == [1, 2, 4]
    first = {name: curve[0]["mean"] for name, curve in curves.items() if name.endswith("gold")}
    assert len(set(round(v, 9) for v in first.values())) == 1  # n = 1: every pick is a random pick
    for oracle, rand in zip(curves["oracle_gold"], curves["random_pick_gold"]):
        assert oracle["mean"] >= rand["mean"] and oracle["low"] <= oracle["mean"] <= oracle["high"]
    assert result["sft_round"]["prompts"] == 6
    assert (tmp_path / "sft_policy" / "config.json").exists()
    assert json.loads((tmp_path / "sft_policy" / "sft_summary.json").read_text())["log"][0]["learning_rate"] > 0
    saved = json.loads((tmp_path / "study.json").read_text())
    assert saved["proxy_pairwise_accuracy"] == result["proxy_pairwise_accuracy"]
    assert "| n | KL bound" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "heldout_base" / "report" / "curves_gold.png").exists()
