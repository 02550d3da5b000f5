"""One rmkit process per output folder: a second `sample-and-score` or `train` on a folder in use
stops with one line; the lock goes with its process, even after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rmkit.errors import ConfigError
from rmkit.folder_lock import LOCK_NAME, folder_lock
from tests.conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
GATE = "RMKIT_TEST_GATE"


def gated_length(record, messages):
    """A scorer function that waits for the file named by $RMKIT_TEST_GATE (when set) before it scores."""
    gate = os.environ.get(GATE)
    while gate and not os.path.exists(gate):
        time.sleep(0.05)
    return float(len(messages[-1]["content"]))


def rmkit(*args, env=ENV, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "rmkit.cli", *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def wait_for_holder(folder, process, timeout=120):
    """Until ``process`` holds ``folder``'s lock (the lock file names it)."""
    deadline = time.monotonic() + timeout
    while f"(pid {process.pid})" not in _read(folder / LOCK_NAME):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first process never took the lock"
        time.sleep(0.1)


def _read(path):
    return path.read_text() if path.exists() else ""


def one_error_line(process):
    out, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1, err
    return lines[0]


def kill(process):
    process.send_signal(signal.SIGKILL)
    process.communicate()


def test_the_lock_names_its_holder_and_goes_with_it(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from rmkit.folder_lock import folder_lock\n"
            "with folder_lock(sys.argv[1], 'sample-and-score'):\n    print('held', flush=True); time.sleep(600)",
            str(tmp_path),
        ],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(ConfigError, match=rf"^{tmp_path} is in use by rmkit sample-and-score \(pid {holder.pid}\): wait"):
        with folder_lock(tmp_path, "sample-and-score"):
            pass
    kill(holder)  # the kernel releases a dead process's lock
    with folder_lock(tmp_path, "sample-and-score"):
        assert _read(tmp_path / LOCK_NAME) == f"rmkit sample-and-score (pid {os.getpid()})\n"
    with folder_lock(tmp_path / "absent", "score", create=False):
        assert not (tmp_path / "absent").exists()  # nothing to lock: the verb says it is missing


@pytest.mark.slow
def test_a_second_sample_and_score_on_a_folder_in_use_stops_with_one_line(tiny_llama, tmp_path):
    prompts = tmp_path / "question.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"question_id": i, "category": "writing", "turns": [f"Tell me a story {i}."]}) + "\n" for i in range(3)
        )
    )
    run = tmp_path / "run"
    (tmp_path / "recipe.yaml").write_text("sample: {seed: 0}\n")
    args = [
        "sample-and-score",
        str(tmp_path / "recipe.yaml"),
        "-o",
        str(run),
        f"sample.prompts={prompts}",
        f"sample.policy={tiny_llama}",
        "sample.backend=transformers",
        "sample.n=2",
        "sample.max_tokens=4",
        "sample.chunk_size=1",
        "score.scorers=[{name: length, function: 'tests.test_folder_lock:gated_length'}]",
    ]
    first = rmkit(*args, env={**ENV, GATE: str(tmp_path / "gate")})  # waits in its first scoring
    try:
        wait_for_holder(run, first)
        line = one_error_line(rmkit(*args))
        assert line.startswith(f"rmkit: error: {run} is in use by rmkit sample-and-score (pid {first.pid}): wait")
        assert first.poll() is None and not (run / "candidates.jsonl").exists()  # the first goes on; the second wrote nothing
    finally:
        kill(first)
    finished = rmkit(*args)  # the killed run's lock is gone: this one takes the folder and finishes it
    out, err = finished.communicate(timeout=300)
    assert finished.returncode == 0, err
    lines = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    assert sorted((line["prompt_id"], line["index"]) for line in lines) == [(str(i), k) for i in range(3) for k in range(2)]


@pytest.mark.slow
def test_a_second_train_on_a_folder_in_use_stops_with_one_line(tiny_llama, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "chosen": "good answer", "rejected": "bad"}) + "\n" for i in range(16))
    )
    out = tmp_path / "rm"
    (tmp_path / "recipe.yaml").write_text("train: {logging_steps: 1}\n")
    args = [
        "train",
        str(tmp_path / "recipe.yaml"),
        f"model.name_or_path={tiny_llama}",
        f"data.path={pairs}",
        f"train.output_dir={out}",
        "train.per_device_batch_size=4",
    ]
    first = rmkit(*args, "train.max_steps=100000")  # runs until killed
    try:
        wait_for_holder(out, first)
        line = one_error_line(rmkit(*args, "train.max_steps=2"))
        assert line.startswith(f"rmkit: error: {out} is in use by rmkit train (pid {first.pid}): wait")
        assert first.poll() is None
    finally:
        kill(first)
    again = rmkit(*args, "train.max_steps=2", "--overwrite")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
