"""Child processes that die with rmkit: a ``kill -9`` of rmkit leaves nothing running on.

Children rmkit starts itself die with it through the kernel (:func:`die_with_parent`).
vLLM's engine processes are started by vLLM, and its EngineCore never watches its parent
(vLLM 0.32; its workers watch the EngineCore): after a ``kill -9`` they ran on, the model
and its KV cache in memory. Running the engine inside rmkit's process instead
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) would take it along, but on a CPU vLLM needs its
worker to be a fresh process (it preloads torch's OpenMP and tcmalloc there): in process it
sampled 2.5x slower (docs/benchmarks.md). So a small *reaper* process watches rmkit
(:func:`start_reaper`): it notes rmkit's descendants every :data:`POLL_SECONDS`, and once
rmkit is gone, however it went, kills those still alive, then exits. A process started since
its last look is found too: it is in rmkit's process group, started after rmkit, and was handed
to init when its parent died.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.5
_reaper: dict[int, subprocess.Popen] = {}  # this process's reaper, by the pid it watches (a fork needs its own)


@contextlib.contextmanager
def engine_environment(name: str, value: str):
    """While an engine starts (vLLM reads its variables then; its processes inherit them):
    ``name=value``, unless the user set the variable. Restored afterwards, so nothing started
    later in this process (a test, a library caller's next engine) inherits the choice."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    Called first thing in a child (``preexec_fn``, a pool's ``initializer``). ``parent``: the
    pid the child was started by; when it is no longer the parent, it died before the call
    and the child exits now.
    """
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def start_reaper() -> None:
    """Start, once per process, the reaper that kills this process's descendants when it dies.

    Call it before starting processes that do not watch this one (vLLM's engine). Without
    ``/proc`` (not Linux) there is none.
    """
    me = os.getpid()
    if me in _reaper or not os.path.isdir("/proc/self"):
        return
    _, group, started = _stat(me)
    _reaper[me] = subprocess.Popen(
        [sys.executable, __file__, str(me), str(group), str(started)],  # a script: it imports nothing of rmkit
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stat(pid: int) -> tuple[int, int, int] | None:
    """``(parent pid, process group, start time)`` of a live process, None when it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # after the name, which may hold anything
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == b"Z" else (int(fields[1]), int(fields[2]), int(fields[19]))


def _processes() -> dict[int, tuple[int, int, int]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def _descendants(roots: set[int], processes: dict[int, tuple[int, int, int]]) -> set[int]:
    found, todo = set(), list(roots)
    while todo:
        parent = todo.pop()
        for pid, (ppid, _, _) in processes.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def _orphans(group: int, started: int, processes: dict[int, tuple[int, int, int]]) -> set[int]:
    """Processes of the watched one's ``group``, started after it, that init took over when their
    parent died: its children it had not seen (a pipeline's other commands keep their parent)."""
    return {pid for pid, (ppid, pgrp, start) in processes.items() if ppid == 1 and pgrp == group and start >= started}


def reap(watched: int, group: int, started: int) -> None:
    """The reaper's life: note ``watched``'s descendants while it lives; once it is gone, kill them
    and the orphans of its process group it started since the last look."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # Ctrl-C or a hangup reaches the whole group: outlive rmkit
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    me, noted = os.getpid(), {}  # pid -> start time (a pid reused later is another process)
    while os.getppid() == watched:
        processes = _processes()
        for pid in _descendants({watched}, processes) - {me}:
            noted.setdefault(pid, processes[pid][2])
        time.sleep(POLL_SECONDS)
    alive = {pid for pid, start in noted.items() if (_stat(pid) or (0, 0, None))[2] == start}
    alive |= _orphans(group, started, _processes()) - {me}
    for pid in alive:  # frozen first, so that none starts another process while they are killed
        _signal(pid, signal.SIGSTOP)
    alive |= _descendants(alive, _processes()) - {me}
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.kill(pid, number)


if __name__ == "__main__":
    reap(*map(int, sys.argv[1:4]))
