"""Every file in accelerate_configs/ trains a few steps of the tiny model on the CPU, or is one
that needs a GPU for a stated reason (docs/training.md, "Accelerate configs").

On a CPU, Accelerate runs several processes as DDP over gloo when told to use the CPU through
the environment (ACCELERATE_USE_CPU=1); it never runs FSDP or DeepSpeed there, so fsdp.yaml
trains as DDP and rmkit says so in one line.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from rmkit.config.recipe import dump_recipe
from tests.conftest import REPO
from tests.fakes import recipe_for, synthetic_pairs, write_jsonl

CONFIGS = REPO / "accelerate_configs"
# config: (processes, what summary.json says ran, extra launch arguments)
ON_CPU = {
    "cpu.yaml": (1, "NO", []),
    "single_gpu.yaml": (1, "NO", ["--cpu"]),  # one process; --cpu: this machine has no GPU
    "multi_gpu.yaml": (2, "MULTI_CPU", []),
    "fsdp.yaml": (2, "MULTI_CPU", []),  # Accelerate turns FSDP off on a CPU: DDP, said in one line
}
NEEDS_GPU = {  # config: why it cannot run here
    "deepspeed_zero2.yaml": "DeepSpeed runs on GPUs only (Accelerate turns it off with the CPU; the package is a GPU extra)",
    "deepspeed_zero3.yaml": "DeepSpeed runs on GPUs only (Accelerate turns it off with the CPU; the package is a GPU extra)",
}


def test_every_config_is_covered():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted([*ON_CPU, *NEEDS_GPU, "multi_node.yaml"])


@pytest.fixture(scope="module")
def recipe_file(tiny_llama, tmp_path_factory):
    folder = tmp_path_factory.mktemp("configs")
    data = write_jsonl(folder / "pairs.jsonl", synthetic_pairs(48))
    recipe = recipe_for(tiny_llama, data, folder / "unused", "train.max_steps=3", "train.save_steps=2")
    dump_recipe(recipe, folder / "recipe.yaml")
    return folder / "recipe.yaml"


def launch(config: str, output_dir, recipe_file, *arguments: str, **environment: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **environment}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config), *arguments,
        "-m", "rmkit.train", str(recipe_file), f"train.output_dir={output_dir}",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    return err


def check_trained(output_dir, processes: int, distributed_type: str) -> None:
    summary = json.loads((output_dir / "summary.json").read_text())
    assert (summary["steps"], summary["processes"], summary["distributed_type"]) == (3, processes, distributed_type)
    assert 0 < summary["eval_loss"] < 5 and (output_dir / "checkpoints" / "step-2").is_dir() and (output_dir / "model").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(ON_CPU))
def test_config_trains_on_the_cpu(config, recipe_file, tmp_path):
    processes, distributed_type, arguments = ON_CPU[config]
    extra = ["--num_processes", "2"] if processes == 2 else []
    err = finished(launch(config, tmp_path / "out", recipe_file, *arguments, *extra, ACCELERATE_USE_CPU="1"))
    check_trained(tmp_path / "out", processes, distributed_type)
    said = "the launch asks for FSDP, which Accelerate runs on GPUs only: these 2 process(es) train as MULTI_CPU instead"
    assert (said in err) == (config == "fsdp.yaml")


@pytest.mark.slow
def test_multi_node_config_trains_on_two_local_machines(recipe_file, tmp_path):
    """multi_node.yaml as two machines of one process each, meeting on the loopback address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    machines = [
        launch("multi_node.yaml", tmp_path / "out", recipe_file, "--num_processes", "2", "--machine_rank", str(rank),
               "--main_process_ip", "127.0.0.1", "--main_process_port", port, ACCELERATE_USE_CPU="1")
        for rank in (0, 1)
    ]  # fmt: skip
    for machine in machines:
        finished(machine)
    check_trained(tmp_path / "out", 2, "MULTI_CPU")


@pytest.mark.parametrize("config", sorted(NEEDS_GPU))
def test_gpu_only_configs_say_why_in_the_docs(config):
    import torch

    docs = (REPO / "docs" / "training.md").read_text()
    row = next(line for line in docs.splitlines() if line.startswith(f"| `{config}`"))
    assert "GPU only" in row
    if not torch.cuda.is_available():
        pytest.skip(f"{config}: {NEEDS_GPU[config]}")
