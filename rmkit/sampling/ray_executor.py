"""``sample.executor: ray``: the chunks of a sampling run go to K Ray actors; this process appends.

Each worker is a Ray actor holding one chunk sampler (:class:`rmkit.sampling.chunk_sampler.ChunkSampler`,
handed in by the pipeline): its own policy engine (vLLM or transformers) and, when the run scores, its own reward model, loaded
once. The driver (this process) reads the prompts, keeps at most ``IN_FLIGHT`` chunks queued
per worker, and hands each finished chunk to the same append loop as a local run, so the run
folder, its resume and its results are those of ``sample.executor: local``.

Actors rather than Ray Data's LLM processors: a worker runs exactly the code of the local
path (multi-turn trajectories, ``per_turn: best`` with the reward model between turns, the
transformers backend), so the CPU tests exercise what a GPU cluster runs, and only this
process writes ``candidates.jsonl``, whose append-per-prompt is what makes resume work.

A worker that dies (``kill -9``, out of memory, its node lost) raises ``RayActorError`` for
its chunks in flight; they go back to the front of the queue for the other workers. A
chunk's result is appended only once it has arrived whole, so every prompt lands once.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterator

from rmkit import logs
from rmkit.config.sections import SampleConfig
from rmkit.errors import MissingDependency, UserError

IN_FLIGHT = 2  # chunks per worker: one generating, the next already there when it finishes
# Set on the driver, needed the same on every node (offline hub, caches, this checkout's rmkit).
PASSED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "TOKENIZERS_PARALLELISM", "PYTHONPATH")


class WorkersLost(UserError, RuntimeError):
    """Every worker died before the run finished; the run folder resumes with a plain rerun."""


class RayWorkers:
    """K sampling actors on a Ray cluster, for a ``with`` block; :meth:`map` runs chunks on them.

    Each actor is ``sampler(*sampler_args)``, whose ``sample(chunk)`` gives a chunk's result;
    ``cfg`` (``sample``) places them. Ray is started here (or joined: ``address``, else ``$RAY_ADDRESS``) unless this process
    already called ``ray.init``; leaving the block kills the actors and shuts down what was
    started, also on Ctrl-C.
    """

    def __init__(self, sampler: type, sampler_args: tuple, cfg: SampleConfig, address: str | None = None):
        self.sampler, self.sampler_args, self.cfg, self.address = sampler, sampler_args, cfg, address
        self.actors: list = []
        self.dead: set[int] = set()
        self.started_ray = False

    def __enter__(self) -> RayWorkers:
        try:
            import ray
        except ImportError:
            raise MissingDependency(
                'sample.executor=ray needs Ray: pip install "rmkit[ray]" (or run with sample.executor=local)'
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
            address = self.address or os.environ.get("RAY_ADDRESS") or "local"
            # Quiet as a local run: the workers' engine logs stay in Ray's session logs unless -v.
            ray.init(address, runtime_env={"env_vars": env}, logging_level="WARNING", log_to_driver=not logs.quiet())
            self.started_ray = True
        count, resources = placement(self.cfg, ray.cluster_resources(), len([n for n in ray.nodes() if n["Alive"]]))
        logs.note(f"sampling on {count} Ray worker(s), each with {resources}")
        if logs.quiet() and self.started_ray:
            logs.note(
                "the workers' engine logs are in Ray's session logs (/tmp/ray/session_latest/logs on each node); "
                "-v shows them here"
            )
        worker = ray.remote(self.sampler).options(**resources, scheduling_strategy="SPREAD", max_restarts=0)
        self.actors = [worker.remote(*self.sampler_args) for _ in range(count)]
        return self

    def __exit__(self, *exc) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started_ray:
            self.ray.shutdown()

    def map(self, chunks: list) -> Iterator:
        """Each chunk's result (:class:`~rmkit.sampling.chunk_sampler.Finished`), in the order they finish.

        A worker gets chunks once its engines are loaded, so one that never starts (no room on
        the cluster) holds none back; one that dies gives its chunks back to the queue.
        """
        from ray.exceptions import OutOfMemoryError, RayActorError

        queue, running = deque(chunks), {}  # chunk's object ref -> (worker number, chunk)
        starting = {actor.__ray_ready__.remote(): number for number, actor in enumerate(self.actors)}
        load, live = Counter(), set()
        while queue or running:
            for number in sorted(live):
                while queue and load[number] < IN_FLIGHT:
                    chunk = queue.popleft()
                    running[self.actors[number].sample.remote(chunk)] = (number, chunk)
                    load[number] += 1
            (ref,), _ = self.ray.wait([*running, *starting], num_returns=1)
            number, chunk = running.pop(ref) if ref in running else (starting.pop(ref), None)
            load[number] -= chunk is not None
            try:
                result = self.ray.get(ref)
            except (RayActorError, OutOfMemoryError) as err:
                if chunk is not None:
                    queue.appendleft(chunk)  # its prompts first, so what was lost is redone soonest
                self._lost(number, err, live)
                if not live and not starting:
                    raise WorkersLost(
                        f"every Ray worker died, the last with: {cause(err)}; rerun the same command to resume"
                    ) from None
                continue
            if chunk is None:
                live.add(number)
            else:
                yield result

    def _lost(self, number: int, err: Exception, live: set) -> None:
        """Take a dead worker out; its other chunks in flight fail and come back the same way."""
        if number in self.dead:
            return
        self.dead.add(number)
        live.discard(number)
        self.ray.kill(self.actors[number])
        logs.note(f"Ray worker {number} died ({cause(err)}); its chunks go to the others", warning=True)


def cause(err: Exception) -> str:
    """One line for a worker's death: the exception its start-up raised (the last line of the
    traceback Ray passes on), else Ray's own first line (killed, out of memory, node lost)."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
    return lines[-1].strip() if getattr(err, "actor_init_failed", False) else lines[0].strip()


def placement(cfg, cluster: dict, nodes: int) -> tuple[int, dict]:
    """(number of workers, Ray resources of each): one worker per ``tensor_parallel_size``
    GPUs, or on a cluster without GPUs one per node, unless ``sample.workers`` says; a CPU
    worker gets its share of the cluster's CPUs (Ray sets its torch threads from it)."""
    gpus, cpus = int(cluster.get("GPU", 0)), int(cluster.get("CPU", 1))
    if gpus:
        count = cfg.workers or max(1, gpus // cfg.tensor_parallel_size)
        if count * cfg.tensor_parallel_size > gpus:
            logs.note(
                f"{count} workers need {count * cfg.tensor_parallel_size} GPUs and the cluster has {gpus} now; "
                "the others start when GPUs join (autoscaler)",
                warning=True,
            )
        return count, {"num_gpus": cfg.tensor_parallel_size, "num_cpus": 1}
    count = cfg.workers or nodes
    return count, {"num_cpus": cpus // count if count <= cpus else cpus / count}
