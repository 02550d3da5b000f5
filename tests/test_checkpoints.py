"""Resuming training from a damaged last checkpoint: passed over with one line, the one before it used."""

import json
import re
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

from rmkit.errors import ConfigError
from rmkit.training.checkpoints import STATE_FILE, Progress, damage, find_resume_checkpoint
from rmkit.training.trainer import train
from tests.fakes import final_eval, recipe_for, synthetic_pairs, write_jsonl


def fake_checkpoint(output_dir, step):
    """The files accelerate's save_state writes (weights, optimizer, RNG states) and rmkit's state file."""
    path = output_dir / "checkpoints" / f"step-{step}"
    path.mkdir(parents=True)
    save_file({"score.weight": torch.randn(1, 16), "lora_A": torch.randn(8, 16)}, path / "model.safetensors")
    torch.save({"state": {0: {"exp_avg": torch.randn(64)}}}, path / "optimizer.bin")
    torch.save({"torch": torch.get_rng_state()}, path / "random_states_0.pkl")
    (path / STATE_FILE).write_text(json.dumps(asdict(Progress(step=step, total_steps=10))))
    return path


def cut(path, keep):
    """Keep the first ``keep`` bytes (negative: drop that many from the end)."""
    path.write_bytes(path.read_bytes()[:keep])


DAMAGES = {
    "weights cut short": (
        lambda p: cut(p / "model.safetensors", -10),
        r"model\.safetensors: \d+ bytes where its header says \d+",
    ),
    "weights header cut": (lambda p: cut(p / "model.safetensors", 5), r"model\.safetensors: 5 bytes, cut short in its header"),
    "optimizer cut short": (lambda p: cut(p / "optimizer.bin", -30), r"optimizer\.bin: not a whole torch\.save archive"),
    "empty RNG state": (lambda p: cut(p / "random_states_0.pkl", 0), r"random_states_0\.pkl: not a whole torch\.save archive"),
    "state file garbled": (lambda p: (p / STATE_FILE).write_text('{"step": 4, "tot'), rf"{STATE_FILE}: "),
}


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_last_checkpoint_is_passed_over_with_one_line(tmp_path, capsys, kind):
    damage_it, why = DAMAGES[kind]
    earlier, last = fake_checkpoint(tmp_path, 2), fake_checkpoint(tmp_path, 4)
    assert damage(last) is None and find_resume_checkpoint("auto", tmp_path) == last
    damage_it(last)
    assert find_resume_checkpoint("auto", tmp_path) == earlier
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"rmkit: warning: checkpoint {last} is damaged (")
    assert err[0].endswith("): trying step-2") and re.search(why, err[0])
    with pytest.raises(ConfigError, match=rf"^train\.resume={last}: the checkpoint is damaged \({why}"):
        find_resume_checkpoint(str(last), tmp_path)


def test_with_every_checkpoint_damaged_one_line_names_the_newest(tmp_path):
    for step in (2, 4):
        cut(fake_checkpoint(tmp_path, step) / "model.safetensors", -1)
    with pytest.raises(
        ConfigError,
        match=r"step-2 is damaged \(model\.safetensors: .*\), and no earlier checkpoint is left: "
        r"rerun with --overwrite to start over$",
    ):
        find_resume_checkpoint("auto", tmp_path)


@pytest.mark.slow
def test_training_resumes_from_the_checkpoint_before_a_damaged_one(tiny_llama, tmp_path, capsys):
    """A finished run whose last checkpoint lost the end of its weights: the rerun goes back to the
    one before and ends where the first run ended (instead of a traceback from loading it)."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(80))
    recipe = recipe_for(tiny_llama, pairs, tmp_path / "rm", "train.max_steps=6", "train.save_steps=2", "lora.dropout=0.0")
    first = train(recipe)
    last = tmp_path / "rm" / "checkpoints" / "step-4"
    cut(last / "model.safetensors", -100)
    capsys.readouterr()
    again = train(recipe)
    err = capsys.readouterr()
    assert f"checkpoint {last} is damaged (model.safetensors:" in err.err and "resuming from" in err.out + err.err
    assert "step-2 (step 2 of 6)" in err.out + err.err
    assert again["steps"] == 6 and final_eval(again) == pytest.approx(final_eval(first), rel=1e-5)
    assert damage(last) is None  # saved again on the way
