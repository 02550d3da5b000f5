"""Run a command while this process holds (and touches) GIB of memory, so the command sees a smaller machine.

    python scripts/with_memory_held.py 14 -- python -m pytest -q tests/test_chat.py

How the test suite was checked on hosts of other sizes (see README, Development): vLLM and
the kernel report the memory free as the engine starts, and held pages are not free.
"""

import subprocess
import sys

import numpy as np


def main() -> int:
    gib, command = float(sys.argv[1]), sys.argv[sys.argv.index("--") + 1 :]
    held = np.ones(int(gib * (1 << 30)), dtype=np.uint8)  # ones, not zeros: every page is really backed
    print(f"holding {held.nbytes / (1 << 30):.1f} GiB; free now:", open("/proc/meminfo").read().split("\n")[2], file=sys.stderr)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
