"""`rmkit iterate`: rounds of sample, score, select and sft; each round samples with the last
round's policy, and a rerun (after kill -9 too) skips the finished stages."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from rmkit.cli import main
from rmkit.config.recipe import load_recipe
from rmkit.training.iterate import round_overrides


def reply_length(record, messages):
    """The scorer of the rounds (`module:function`): longer replies win."""
    return float(len(messages[-1]["content"]))


def test_round_settings_follow_the_mode(tmp_path):
    rest = load_recipe(None, ["sample.policy=base"])
    assert round_overrides(rest, tmp_path, 1) == [
        "sample.policy=base",
        "sft.policy=base",
        f"sft.data={tmp_path / 'round-1' / 'sft_data.jsonl'}",
        f"sft.output_dir={tmp_path / 'round-1' / 'policy'}",
    ]
    second = round_overrides(rest, tmp_path, 2)  # samples with round 1's policy, fine-tunes the base again
    assert second[:2] == [f"sample.policy={tmp_path / 'round-1' / 'policy'}", "sft.policy=base"]
    raft = load_recipe(None, ["sample.policy=base", "iterate.mode=raft"])
    assert round_overrides(raft, tmp_path, 2)[:3] == [  # continues from round 1's policy on round 2's data
        f"sample.policy={tmp_path / 'round-1' / 'policy'}",
        f"sft.policy={tmp_path / 'round-1' / 'policy'}",
        f"sft.data={tmp_path / 'round-2' / 'run' / 'sft.jsonl'}",
    ]


def test_rounds_must_be_positive(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("iterate:\n  rounds: 0\n")
    assert main(["iterate", str(recipe)]) == 2
    assert "iterate.rounds must be at least 1, got 0" in capsys.readouterr().err


def write_recipe(tmp_path, tiny_llama, mode):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "messages": [{"role": "user", "content": f"Say something {i}"}]}) + "\n" for i in range(3)
        )
    )
    recipe = tmp_path / f"{mode}.yaml"
    recipe.write_text(f"""
sample: {{policy: {tiny_llama}, prompts: {prompts}, backend: transformers, n: 2, max_tokens: 6, dtype: float32, temperature: 1.0}}
score:
  scorers: [{{name: length, function: "tests.test_iterate:reply_length"}}]
sft: {{max_steps: 2, per_device_batch_size: 2, learning_rate: 1.0e-3, logging_steps: 1, warmup_ratio: 0}}
iterate: {{rounds: 2, mode: {mode}}}
""")
    return recipe


def iterate_command(recipe, out):
    return [sys.executable, "-m", "rmkit.cli", "iterate", str(recipe), "-o", str(out)]


@pytest.mark.slow
def test_rest_em_rounds_sample_with_the_last_policy_and_resume_after_kill(tmp_path, tiny_llama):
    recipe, out = write_recipe(tmp_path, tiny_llama, "rest_em"), tmp_path / "iterate"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen(iterate_command(recipe, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    round_one = out / "round-1" / "policy" / "sft_summary.json"
    deadline = time.time() + 300
    while not round_one.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert round_one.exists(), "round 1 never finished"
    os.kill(process.pid, signal.SIGKILL)  # in round 2; its stage process dies with it
    process.wait()
    finished_at = round_one.stat().st_mtime
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])]
    assert left == []  # the stage process went with its parent (parent-death signal)
    result = subprocess.run(iterate_command(recipe, out), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert round_one.stat().st_mtime == finished_at  # round 1 was not trained again
    assert "+ rmkit sft" not in result.stderr.split("round 2/2")[0]
    round_two = load_recipe(out / "round-2" / "run" / "recipe.yaml")
    assert round_two.sample.policy == str(out / "round-1" / "policy")  # sampled with round 1's policy
    kept = [len((out / f"round-{k}" / "run" / "sft.jsonl").read_text().splitlines()) for k in (1, 2)]
    assert len((out / "round-2" / "sft_data.jsonl").read_text().splitlines()) == sum(kept) == 6  # all data so far
    summary = json.loads((out / "round-2" / "policy" / "sft_summary.json").read_text())
    assert summary["policy"] == str(tiny_llama) and summary["conversations"] == 6  # ReST-EM: the base again
    rows = json.loads((out / "iterate.json").read_text())["rounds"]
    assert [row["round"] for row in rows] == [1, 2] and rows[1]["sampled_with"] == str(out / "round-1" / "policy")
    again = subprocess.run(iterate_command(recipe, out), env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "rmkit sft" not in again.stderr  # everything done: nothing trained again
    assert again.stderr.count("prompts are sampled") == 2


@pytest.mark.slow
def test_raft_continues_from_the_last_policy(tmp_path, tiny_llama):
    recipe, out = write_recipe(tmp_path, tiny_llama, "raft"), tmp_path / "iterate"
    assert main(["iterate", str(recipe), "-o", str(out)]) == 0
    summary = json.loads((out / "round-2" / "policy" / "sft_summary.json").read_text())
    assert summary["policy"] == str(out / "round-1" / "policy") and summary["conversations"] == 3
    assert summary["data"] == str(out / "round-2" / "run" / "sft.jsonl")
