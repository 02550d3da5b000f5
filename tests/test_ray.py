"""``sample.executor: ray`` on a local two-CPU Ray cluster, tiny models, the transformers backend.

One Ray instance serves the module. The guarantees: a Ray run with 2 workers writes the same
candidates as the local run (byte for byte once sorted by prompt), a worker killed with
SIGKILL mid-run loses nothing and duplicates nothing, and a driver stopped by Ctrl-C leaves a
folder that a plain rerun finishes to the same file.
"""

import json
import os
import signal
import sys
import time

import pytest

from rmkit import cli
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import SampleConfig
from rmkit.errors import ConfigError, MissingDependency
from rmkit.sampling import pipeline
from rmkit.sampling.chunk_sampler import ChunkSampler
from rmkit.sampling.pipeline import sample_and_score, validate
from rmkit.sampling.ray_executor import RayWorkers, WorkersLost, placement
from rmkit.sampling.runs import CandidateLog
from tests.conftest import REPO

N, MAX_TOKENS = 2, 6
QUESTIONS = [
    ("writing", ["Write a short poem about the sea.", "Now make it rhyme."]),
    ("math", ["What is two plus three?", "And times four?"]),
    ("roleplay", ["Tell me a story.", "Give it a happy ending."]),
    ("stem", ["Why is the sea blue?", "And the sky?"]),
    ("humanities", ["What is the capital of France?", "Tell me about it."]),
    ("writing", ["Please help me answer a question.", "Thanks, one more?"]),
]
KILL_MARKER = "RMKIT_TEST_KILL_MARKER"  # the file whose creation lets exactly one worker die


@pytest.fixture(scope="module")
def kill_marker(tmp_path_factory):
    return tmp_path_factory.mktemp("kill") / "killed"


@pytest.fixture(scope="module")
def ray_cluster(kill_marker):
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "rmkit[ray]"')
    # Workers import this checkout's rmkit and tests (pytest puts the checkout on sys.path only here).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        "local",
        num_cpus=2,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": path, KILL_MARKER: str(kill_marker)}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "question.jsonl"
    rows = [{"question_id": 100 + i, "category": c, "turns": turns} for i, (c, turns) in enumerate(QUESTIONS)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def make_recipe(prompts, tiny_llama, reward_model, *overrides):
    return load_recipe(
        None,
        [
            f"sample.prompts={prompts}",
            f"sample.policy={tiny_llama}",
            "sample.backend=transformers",
            f"sample.n={N}",
            f"sample.max_tokens={MAX_TOKENS}",
            "sample.dtype=float32",
            "sample.temperature=1.0",
            "sample.chunk_size=1",
            f"score.reward_model={reward_model}",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def local_run(prompts, tiny_llama, reward_model, tmp_path_factory):
    """The same recipe run here, on one torch thread as each worker (num_cpus=1) has: a float
    sum split over more threads may differ in its last bit, and so a reward."""
    import torch

    path, threads = tmp_path_factory.mktemp("local"), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sample_and_score(make_recipe(prompts, tiny_llama, reward_model), path)
    finally:
        torch.set_num_threads(threads)
    return path


def sorted_lines(path):
    """candidates.jsonl's lines as bytes, sorted by prompt (file order) and candidate."""
    lines = (path / "candidates.jsonl").read_bytes().splitlines(keepends=True)
    return sorted(lines, key=lambda raw: (json.loads(raw)["order"], json.loads(raw)["index"]))


def assert_same_run(path, expected):
    got = sorted_lines(path)
    assert len(got) == len(QUESTIONS) * N
    assert len({(json.loads(raw)["prompt_id"], json.loads(raw)["index"]) for raw in got}) == len(got)  # each once
    assert got == sorted_lines(expected)
    assert (path / "sft.jsonl").read_bytes() == (expected / "sft.jsonl").read_bytes()  # selection reads prompt order
    stats = [{k: v for k, v in json.loads((p / "stats.json").read_text()).items() if k != "timings"} for p in (path, expected)]
    assert stats[0] == stats[1]


@pytest.mark.slow
def test_two_workers_write_what_the_local_run_writes(ray_cluster, prompts, tiny_llama, reward_model, local_run, tmp_path, capfd):
    recipe = make_recipe(prompts, tiny_llama, reward_model, "sample.executor=ray", "sample.workers=2")
    sample_and_score(recipe, tmp_path / "ray")
    assert "sampling on 2 Ray worker(s)" in capfd.readouterr().err
    assert_same_run(tmp_path / "ray", local_run)
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["timings"]["sample"]["tokens"] == sum(
        t["tokens"] for raw in sorted_lines(local_run) for t in json.loads(raw)["turns"]
    )


class DiesOnItsSecondChunk(ChunkSampler):
    """A worker that SIGKILLs itself when its second chunk arrives: the first worker to get there."""

    chunks = 0

    def sample(self, chunk):
        self.chunks += 1
        if self.chunks == 2:
            try:
                os.close(os.open(os.environ[KILL_MARKER], os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().sample(chunk)


@pytest.mark.slow
def test_a_killed_worker_loses_no_prompt_and_doubles_none(
    ray_cluster, kill_marker, prompts, tiny_llama, reward_model, local_run, tmp_path, monkeypatch, capfd
):
    monkeypatch.setattr(pipeline, "ChunkSampler", DiesOnItsSecondChunk)
    recipe = make_recipe(prompts, tiny_llama, reward_model, "sample.executor=ray", "sample.workers=2")
    sample_and_score(recipe, tmp_path / "ray")
    assert kill_marker.exists()  # one worker did die
    assert "died (The actor died unexpectedly" in capfd.readouterr().err
    assert_same_run(tmp_path / "ray", local_run)


@pytest.mark.slow
def test_an_interrupted_driver_leaves_a_folder_a_rerun_finishes(
    ray_cluster, prompts, tiny_llama, reward_model, local_run, tmp_path, monkeypatch
):
    recipe = make_recipe(prompts, tiny_llama, reward_model, "sample.executor=ray", "sample.workers=2")
    append, appended = CandidateLog.append, []

    def append_then_ctrl_c(log, group):
        if appended:  # the first chunk (one prompt) is in the file
            raise KeyboardInterrupt
        append(log, group)
        appended.append(group)

    monkeypatch.setattr(CandidateLog, "append", append_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        sample_and_score(recipe, tmp_path / "ray")
    monkeypatch.setattr(CandidateLog, "append", append)
    first = (tmp_path / "ray" / "candidates.jsonl").read_bytes()
    assert len(first.splitlines()) == N
    deadline = time.monotonic() + 30  # the workers were killed: the cluster's CPUs come back
    while ray_cluster.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_cluster.available_resources().get("CPU", 0) == 2

    assert cli.main(["sample-and-score", str(tmp_path / "ray")]) == 0  # the plain rerun, on the run folder's recipe
    assert (tmp_path / "ray" / "candidates.jsonl").read_bytes().startswith(first)  # kept, not redone
    assert_same_run(tmp_path / "ray", local_run)


@pytest.mark.slow
def test_workers_that_cannot_start_stop_the_run_with_their_error(ray_cluster, prompts, tiny_llama, reward_model, tmp_path):
    recipe = make_recipe(
        prompts, tiny_llama, reward_model, "sample.executor=ray", "sample.workers=1", f"sample.policy={tmp_path}/absent"
    )
    with pytest.raises(WorkersLost, match=r"every Ray worker died, the last with: .*sample.policy.*absent"):
        sample_and_score(recipe, tmp_path / "ray")
    assert not (tmp_path / "ray" / "candidates.jsonl").exists()


# ----------------------------------------------------------------------------- without a cluster


def test_placement_one_worker_per_tensor_parallel_group_or_per_node():
    cpu = {"CPU": 16.0}
    assert placement(SampleConfig(), {"CPU": 64.0, "GPU": 8.0}, nodes=1) == (8, {"num_gpus": 1, "num_cpus": 1})
    assert placement(SampleConfig(tensor_parallel_size=2), {"CPU": 64.0, "GPU": 8.0}, 1) == (4, {"num_gpus": 2, "num_cpus": 1})
    assert placement(SampleConfig(workers=2), {"CPU": 64.0, "GPU": 8.0}, 1) == (2, {"num_gpus": 1, "num_cpus": 1})
    assert placement(SampleConfig(), cpu, nodes=2) == (2, {"num_cpus": 8})  # CPU only: a node each, its cores
    assert placement(SampleConfig(workers=32), cpu, nodes=2) == (32, {"num_cpus": 0.5})  # more than cores: a share


def test_ray_options_are_checked_before_anything_starts(monkeypatch):
    with pytest.raises(ConfigError, match="--ray-address auto goes with sample.executor=ray"):
        validate(load_recipe(None, ["score.reward_model=rm"]), scoring=True, ray_address="auto")
    with pytest.raises(ConfigError, match="sample.workers must be at least 1"):
        validate(load_recipe(None, ["sample.executor=ray", "sample.workers=0", "score.reward_model=rm"]), scoring=True)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(MissingDependency, match=r'needs Ray: pip install "rmkit\[ray\]"'):
        recipe = load_recipe(None, ["sample.executor=ray"])
        RayWorkers(ChunkSampler, (recipe, True, 1), recipe.sample).__enter__()
