"""``rmkit sft``: assistant-only masks, and a short SFT of a tiny model whose loss falls and
whose merged output loads as a policy."""

import json

import pytest

from rmkit.cli import main
from rmkit.conversation import message
from rmkit.training.sft import encode_sft

CONVERSATION = [
    message("user", "Hello! How are you?"),
    message("assistant", "I am fine, thank you."),
    message("user", "What is the capital of France?"),
    message("assistant", "Paris is the capital of France."),
]


def test_only_assistant_turns_are_learned():
    from tests.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    encoded = encode_sft(tokenizer, CONVERSATION, 512)
    learned = tokenizer.decode([t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m])
    assert learned == "I am fine, thank you.<|im_end|>\nParis is the capital of France.<|im_end|>\n"
    assert len(encoded["input_ids"]) == len(encoded["assistant_masks"])
    cut = encode_sft(tokenizer, CONVERSATION, 10)
    assert len(cut["input_ids"]) == len(cut["assistant_masks"]) == 10


@pytest.mark.slow
@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])  # bf16 on a CPU failed in TrainingArguments before use_cpu
def test_sft_run_folder_to_a_merged_policy(tmp_path, tiny_llama, capsys, mixed_precision):
    import torch
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(f"sample:\n  policy: {tiny_llama}\n")
    (run / "sft.jsonl").write_text(json.dumps({"messages": CONVERSATION}) + "\n" * 1)
    out = tmp_path / "policy"
    overrides = [
        f"sft.output_dir={out}",
        "sft.max_steps=6",
        "sft.learning_rate=5e-3",
        "sft.logging_steps=1",
        "sft.warmup_ratio=0",
        f"sft.mixed_precision={mixed_precision}",
    ]
    assert main(["sft", str(run), *overrides]) == 0
    summary = json.loads((out / "sft_summary.json").read_text())
    losses = [entry["loss"] for entry in summary["log"]]
    assert summary["steps"] == 6 and summary["conversations"] == 1 and len(losses) == 6
    assert losses[-1] < losses[0]  # the one conversation is being learned
    tuned = AutoModelForCausalLM.from_pretrained(out)  # merged: plain transformers loads it, no adapter
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert not (out / "adapter_config.json").exists()
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), base.state_dict().values()))
    screen = capsys.readouterr()
    assert "use it as sample.policy=" in screen.out
    assert "examples/s" not in screen.err  # datasets' bars for TRL's maps and filters stay off the screen
    from accelerate import Accelerator

    Accelerator(mixed_precision="no", cpu=True)  # rmkit train after sft in one process: failed after bf16 (state kept)


def test_sft_names_a_missing_data_file(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"sample:\n  output_dir: {tmp_path / 'nothing'}\n")
    assert main(["sft", str(recipe)]) == 2
    assert "sft.jsonl does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("checkpointing", [True, False])
def test_sft_settings_reach_trl(checkpointing):
    from rmkit.config.recipe import load_recipe
    from rmkit.training.sft import sft_arguments

    recipe = load_recipe(
        None, [f"sft.gradient_checkpointing={str(checkpointing).lower()}", "sft.learning_rate=3e-5", "sft.max_steps=7"]
    )
    args = sft_arguments(recipe, 64)
    assert args.gradient_checkpointing is checkpointing  # TRL turns it on unless told
    assert (args.learning_rate, args.max_steps, args.max_length) == (3e-5, 7, 64)
