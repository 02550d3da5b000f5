"""How many cores vLLM's CPU engine computes on.

On x86 vLLM keeps one core per worker for its scheduler process and binds its OpenMP
threads to the rest (``VLLM_CPU_NUM_OF_RESERVED_CPU``). On a many-core server that is a
small share; on a machine of a few cores it is a large one: on 2 cores the engine computed
on one, and letting it use both made sampling 1.8x faster (docs/benchmarks.md) because the
scheduler mostly waits while the model runs. So on at most :data:`FEW_CORES` usable cores
rmkit reserves none, unless the user set the variable.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from rmkit.processes import engine_environment

FEW_CORES = 4
RESERVED = "VLLM_CPU_NUM_OF_RESERVED_CPU"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def engine_cores(is_cpu: bool):
    """While a vLLM engine starts (its processes read the variable when spawned): on a CPU of
    few cores, no core reserved for the scheduler. The environment is restored afterwards."""
    if not is_cpu or usable_cores() > FEW_CORES:
        yield
        return
    with engine_environment(RESERVED, "0"):
        yield
