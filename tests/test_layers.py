"""Rules of the code's shape, checked: `rmkit --help` imports no heavy library."""

import json
import subprocess
import sys

from tests.conftest import REPO

# Imported only inside the verbs that need them (rmkit/cli.py), so `rmkit --help` and a typo
# answer at once, and a machine without a GPU stack can still list the verbs.
HEAVY = ("torch", "transformers", "vllm", "ray", "gradio", "accelerate", "peft", "trl", "datasets", "matplotlib", "numpy")

HELP_EVERY_VERB = """
import contextlib, io, json, sys
from rmkit.cli import VERBS, main
for argv in (["--help"], *([verb, "--help"] for verb in VERBS)):
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        main(argv)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)))
"""


def test_help_imports_no_heavy_library():
    code = f"HEAVY = {HEAVY!r}\n" + HELP_EVERY_VERB
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
