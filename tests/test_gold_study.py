"""The gold study's quick variant end to end (scripts/gold_study.py): every arm present, the
random-pick control drawn from the same prompts and count, intervals ordered. Not its effect:
the policy and the proxy are tiny random models, so the some thirty rmkit processes it runs
take a few minutes."""

import importlib.util
import json

import pytest

from tests.conftest import REPO, shared_data

# round 2 and its own-size random control evaluated last: a study cut short reports the others
ARMS = ("base", "random", "verifier", "proxy", "round2", "random2")


@pytest.mark.slow
def test_quick_gold_study(tmp_path, tiny_llama):
    pytest.importorskip("if_verifiable")
    shared_data("hh_rlhf/helpful-base/test.jsonl.gz")
    spec = importlib.util.spec_from_file_location("gold_study", REPO / "scripts" / "gold_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    result = study.main(
        ["--quick", "--out", str(tmp_path), "--set", f"sample.policy={tiny_llama}", "--set", f"model.name_or_path={tiny_llama}"]
    )

    read = lambda path: [json.loads(line) for line in path.read_text().splitlines()]  # noqa: E731
    heldout, train = read(tmp_path / "prompts" / "heldout.jsonl"), read(tmp_path / "prompts" / "train.jsonl")
    assert len(heldout) == 6 and all(1 <= len(p["instruction_id_list"]) <= 3 for p in heldout)
    assert {p["question"] for p in train}.isdisjoint(p["question"] for p in heldout)  # split by question

    assert tuple(result["arms"]) == ARMS
    evaluation = result["heldout"]
    assert set(evaluation["policies"]) == set(ARMS) and evaluation["prompts"] == 6
    pairs = {(d["policy"], d["reference"]) for d in evaluation["differences"]}
    assert {(arm, "base") for arm in ARMS if arm != "base"} | {(arm, "random") for arm in ARMS if arm != "random"} == pairs
    steps = [evaluation["round2_minus_round1"], evaluation["round2_minus_random2"]]
    for row in [*evaluation["policies"].values(), *evaluation["differences"], *steps]:
        assert row["low"] <= row["mean"] <= row["high"]
    # the control: the same candidates, the same prompts and count, picked at random
    verifier, control = read(tmp_path / "iterate" / "round-1" / "run" / "sft.jsonl"), read(tmp_path / "random" / "sft.jsonl")
    assert [c["messages"][0] for c in control] == [c["messages"][0] for c in verifier]
    assert result["kept"]["random"]["conversations"] == result["kept"]["verifier"]["conversations"]
    assert json.loads((tmp_path / "random" / "stats.json").read_text())["pick"] == "random"
    round_two = json.loads((tmp_path / "iterate" / "iterate.json").read_text())["rounds"]
    assert round_two[1]["sampled_with"] == str(tmp_path / "iterate" / "round-1" / "policy")
    assert [r["sft_conversations"] for r in result["rounds"]] == [r["sft_conversations"] for r in round_two]
    control = read(tmp_path / "random2" / "sft_data.jsonl")  # the round-2 control: as many conversations as round 2
    assert len(control) == round_two[1]["sft_conversations"] and result["kept"]["random2"]["conversations"] > 0
    curves = result["proxy"]["curves"]
    assert [row["n"] for row in curves["oracle_gold"]] == [1, 2, 4]
    for oracle, rand in zip(curves["oracle_gold"], curves["random_pick_gold"]):
        assert oracle["mean"] >= rand["mean"] - 1e-12
    if "ifbench" in result:
        assert set(result["ifbench"]["policies"]) == set(ARMS)
    assert "| round2 |" in (tmp_path / "study.md").read_text()
    assert "Round 2 minus round 1 (the verifier arm), paired: " in (tmp_path / "study.md").read_text()
