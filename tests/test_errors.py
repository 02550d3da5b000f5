"""Every verb's bad input ends in one line, ``rmkit: error: ...``, naming the file or key, and exit code 2.

The table runs each case in process through :func:`rmkit.cli.main`; every case fails
before a model is loaded. One case runs ``python -m rmkit.train`` (what ``accelerate
launch -m rmkit.train`` starts) as a real process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rmkit.cli import main
from rmkit.config import ConfigError, Recipe, dump_recipe

REPO = Path(__file__).resolve().parents[1]
PAIR = {"prompt": [{"role": "user", "content": "Hello!"}], "chosen": "Hi, how can I help?", "rejected": "Go away."}
QUESTION = {"question_id": 1, "category": "writing", "turns": ["Write a short poem about the sea."]}


class Inputs:
    """Good and bad input files in one folder, and recipes that use them."""

    def __init__(self, root: Path, tiny_llama: Path):
        self.root, self.model = root, str(tiny_llama)
        self.pairs = self.write("pairs.jsonl", [json.dumps(PAIR)] * 8)
        self.bad_pairs = self.write("bad_pairs.jsonl", [json.dumps(PAIR), '{"prompt": "Hi", "chosen": ', json.dumps(PAIR)])
        self.empty = self.write("empty.jsonl", [])
        self.prompts = self.write("prompts.jsonl", [json.dumps(QUESTION)])
        self.bad_prompts = self.write("bad_prompts.jsonl", [json.dumps(QUESTION), "[1, 2]"])
        self.outputs = self.write("outputs.json", [json.dumps([{"instruction": "Hi", "output": "Hello", "generator": "m"}])])
        self.reference = self.write("reference.json", [json.dumps([{"instruction": "Hi", "output": "Yo", "generator": "ref"}])])
        self.bad_outputs = self.write("bad_outputs.json", [json.dumps([{"instruction": "Hi", "generator": "m"}])])
        recipe = Recipe()
        recipe.model.name_or_path, recipe.data.path = self.model, str(self.pairs)
        recipe.train.output_dir = str(root / "rm")
        recipe.sample.prompts, recipe.sample.policy, recipe.sample.backend = str(self.prompts), self.model, "transformers"
        recipe.sample.output_dir, recipe.score.reward_model = str(root / "run"), self.model
        self.recipe = str(root / "recipe.yaml")
        dump_recipe(recipe, self.recipe)
        (root / "not_a_run").mkdir()

    def write(self, name: str, lines: list[str]) -> str:
        path = self.root / name
        path.write_text("".join(line + "\n" for line in lines))
        return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_llama) -> Inputs:
    return Inputs(tmp_path_factory.mktemp("bad_inputs"), tiny_llama)


# (verb, arguments given the Inputs, what the one line must name)
CASES = {
    "train-unknown-key": ("train", lambda i: [i.recipe, "train.bogus=1"], "train.bogus"),
    "train-wrong-type": ("train", lambda i: [i.recipe, "train.max_steps=many"], "train.max_steps"),
    "train-not-an-override": ("train", lambda i: [i.recipe, "train.max_steps"], "train.max_steps"),
    "train-missing-recipe": ("train", lambda i: ["nowhere.yaml"], "nowhere.yaml"),
    "train-bad-record": ("train", lambda i: [i.recipe, f"data.path={i.bad_pairs}"], "bad_pairs.jsonl:2"),
    "train-missing-data": ("train", lambda i: [i.recipe, "data.path=nowhere.jsonl"], "nowhere.jsonl"),
    "train-empty-data": ("train", lambda i: [i.recipe, f"data.path={i.empty}"], "empty.jsonl"),
    "train-nothing-fits": ("train", lambda i: [i.recipe, "data.max_length=4"], "data.max_length"),
    "train-missing-model": ("train", lambda i: [i.recipe, "model.name_or_path=/nowhere/model"], "model.name_or_path /nowhere/model"),
    "eval-missing-reward-model": ("eval", lambda i: ["/nowhere/rm", i.pairs], "reward model /nowhere/rm: no such folder"),
    "eval-not-a-model-folder": ("eval", lambda i: [str(i.root / "not_a_run"), i.pairs], "not_a_run: not a model folder"),
    "eval-bad-record": ("eval", lambda i: [i.model, i.bad_pairs], "bad_pairs.jsonl:2"),
    "eval-missing-data": ("eval", lambda i: [i.model, "nowhere.jsonl"], "nowhere.jsonl"),
    "eval-no-data": ("eval", lambda i: [i.model], "--heldout"),
    "eval-heldout-of-no-run": ("eval", lambda i: [i.model, "--heldout"], "recipe.yaml"),
    "sample-and-score-unknown-key": ("sample-and-score", lambda i: [i.recipe, "sample.bogus=1"], "sample.bogus"),
    "sample-and-score-missing-prompts": ("sample-and-score", lambda i: [i.recipe, "sample.prompts=nowhere.jsonl"], "nowhere.jsonl"),
    "sample-and-score-bad-prompt": ("sample-and-score", lambda i: [i.recipe, f"sample.prompts={i.bad_prompts}"], "bad_prompts.jsonl:2"),
    "sample-and-score-empty-prompts": ("sample-and-score", lambda i: [i.recipe, f"sample.prompts={i.empty}"], "sample.prompts"),
    "sample-and-score-missing-policy": ("sample-and-score", lambda i: [i.recipe, "sample.policy=/nowhere/p"], "sample.policy /nowhere/p"),
    "sample-and-score-missing-reward-model": (
        "sample-and-score", lambda i: [i.recipe, "score.reward_model=/nowhere/rm"], "score.reward_model /nowhere/rm"
    ),
    "sample-and-score-no-reward-model": ("sample-and-score", lambda i: [i.recipe, "score.reward_model="], "score.reward_model"),
    "score-not-a-run": ("score", lambda i: [str(i.root / "not_a_run")], "recipe.yaml"),
    "score-no-run-yet": ("score", lambda i: [i.recipe, f"sample.output_dir={i.root / 'never'}"], "is not a run folder yet"),
    "leaderboard-missing-outputs": (
        "leaderboard", lambda i: ["nowhere.json", "--reference", i.reference, "--reward-model", i.model], "nowhere.json"
    ),
    "leaderboard-bad-record": (
        "leaderboard", lambda i: [i.bad_outputs, "--reference", i.reference, "--reward-model", i.model], "bad_outputs.json:#0"
    ),
    "leaderboard-missing-reward-model": (
        "leaderboard", lambda i: [i.outputs, "--reference", i.reference, "--reward-model", "/nowhere/rm"], "--reward-model /nowhere/rm"
    ),
    "report-missing-folder": ("report", lambda i: ["/nowhere/run"], "/nowhere/run"),
    "report-not-a-run": ("report", lambda i: [str(i.root / "not_a_run")], "not_a_run"),
    "chat-missing-model": ("chat", lambda i: ["--model", "/nowhere/p"], "--model /nowhere/p"),
    "chat-missing-reward-model": ("chat", lambda i: ["--model", i.model, "--reward-model", "/nowhere/rm"], "--reward-model /nowhere/rm"),
    "chat-unknown-key": ("chat", lambda i: ["--model", i.model, "sample.bogus=1"], "sample.bogus"),
    "chat-missing-recipe": ("chat", lambda i: ["--recipe", "nowhere.yaml"], "nowhere.yaml"),
    "ui-missing-run": ("ui", lambda i: ["/nowhere/run"], "/nowhere/run"),
}


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rmkit: error: "), err
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_code_2(case, inputs, capsys, monkeypatch):
    monkeypatch.chdir(inputs.root)  # relative names ("nowhere.jsonl") are looked up there
    monkeypatch.delenv("RMKIT_DEBUG", raising=False)
    verb, arguments, named = CASES[case]
    overwrite = ["--overwrite"] if verb == "sample-and-score" else []  # each case starts the run afresh
    code = main([verb, *arguments(inputs), *overwrite])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and named in line


def test_a_bad_record_says_how_to_skip_it(inputs, capsys):
    assert main(["train", inputs.recipe, f"data.path={inputs.bad_pairs}"]) == 2
    assert "data.on_error=skip" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("error", [MemoryError(), "torch"])
def test_out_of_memory_names_the_settings_to_lower(error, inputs, capsys, monkeypatch):
    import torch

    if error == "torch":
        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def train(recipe, overwrite=False):
        raise error

    monkeypatch.setattr("rmkit.train.train", train)
    assert main(["train", inputs.recipe]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "out of memory" in line and "train.per_device_batch_size" in line


def test_a_missing_optional_package_is_named(inputs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails as if it were not installed
    assert main(["chat", "--model", inputs.model, "--backend", "vllm"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "sample.backend=vllm needs vLLM" in line and "pip install" in line
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["ui", "--model", "/nowhere/p"]) == 2  # before any model is looked for
    assert "rmkit ui needs gradio: pip install" in one_error_line(capsys.readouterr().err)


def test_a_bug_keeps_its_traceback(inputs, monkeypatch):
    def broken(run_dir):
        return 1 / 0

    monkeypatch.setattr("rmkit.run_report.write_report", broken)
    with pytest.raises(ZeroDivisionError):
        main(["report", str(inputs.root)])


def test_debug_shows_the_traceback_of_a_user_error(inputs, monkeypatch):
    with pytest.raises(ConfigError, match="train.bogus"):
        main(["--debug", "train", inputs.recipe, "train.bogus=1"])
    with pytest.raises(ConfigError, match="train.bogus"):
        main(["train", inputs.recipe, "train.bogus=1", "--debug"])  # after the verb too
    monkeypatch.setenv("RMKIT_DEBUG", "1")
    with pytest.raises(ConfigError, match="train.bogus"):
        main(["train", inputs.recipe, "train.bogus=1"])


def test_python_m_rmkit_train_goes_through_the_same_boundary(inputs):
    """`accelerate launch -m rmkit.train` runs `python -m rmkit.train` in each process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("RMKIT_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "rmkit.train", inputs.recipe, f"data.path={inputs.bad_pairs}"],
        capture_output=True, text=True, env=env, cwd=inputs.root, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "bad_pairs.jsonl:2" in one_error_line(result.stderr)
