"""Rules of the code's shape (docs/architecture.md), checked: every module is on the map, no module
imports one of a higher layer, no import circles, none over 400 lines, and `rmkit --help` imports no heavy library."""

import ast
import json
import re
import subprocess
import sys

from tests.conftest import REPO

ARCHITECTURE = REPO / "docs" / "architecture.md"


def documented_layers() -> list[list[str]]:
    """The layers of docs/architecture.md's table, bottom to top, each a list of module names; "rmkit.x.*"
    holds the package rmkit.x and its modules. A module may import its own layer and those below,
    never one above (imports inside functions count too)."""
    rows = [line for line in ARCHITECTURE.read_text().splitlines() if re.match(r"\| \d+ \|", line)]
    return [re.findall(r"`(rmkit[\w.*]*)`", row.split("|")[3]) for row in reversed(rows)]


def documented_modules() -> set[str]:
    """The module files the tree of docs/architecture.md lists, as paths under rmkit/."""
    text = ARCHITECTURE.read_text()
    tree = text[text.index("```\nrmkit/\n") + len("```\nrmkit/\n") :].split("```")[0]
    folders, paths = [], set()
    for line in tree.splitlines():
        indent, name = (len(line) - len(line.lstrip())) // 2, line.split()[0]
        folders = folders[: indent - 1]
        if name.endswith("/"):
            folders.append(name)
        else:
            paths.add("".join(folders) + name)
    return paths


LAYERS = documented_layers()

# Imported only inside the verbs that need them (rmkit/cli.py), so `rmkit --help` and a typo
# answer at once, and a machine without a GPU stack can still list the verbs.
HEAVY = (
    "torch",
    "transformers",
    "vllm",
    "ray",
    "gradio",
    "accelerate",
    "peft",
    "trl",
    "datasets",
    "matplotlib",
    "numpy",
    "fastapi",
    "uvicorn",
    "prometheus_client",
)

HELP_EVERY_VERB = """
import contextlib, io, json, sys
from rmkit.cli import VERBS, main
for argv in (["--help"], *([verb, "--help"] for verb in VERBS)):
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        main(argv)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)))
"""


def layer_of(module: str) -> int:
    """The most specific entry wins: rmkit.sampling.verbs over rmkit.sampling.*."""
    exact = [i for i, names in enumerate(LAYERS) if module in names]
    wild = [
        i
        for i, names in enumerate(LAYERS)
        for name in names
        if name.endswith(".*") and (module == name[:-2] or module.startswith(name[:-1]))
    ]
    if not exact and not wild:
        raise AssertionError(f"{module} has no layer in tests/test_layers.py LAYERS")
    return (exact or wild)[0]


def rmkit_imports(path) -> set[str]:
    """The rmkit modules a file imports, anywhere in it (``from rmkit import x`` names rmkit.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rmkit.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rmkit":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if (REPO / (submodule.replace(".", "/") + ".py")).exists() else node.module)
    return found


def module_name(path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def test_every_module_is_on_the_map():
    """docs/architecture.md lists every module of rmkit/ (and none that is gone); its layer table puts
    the core at the bottom and the apps on top (every module's layer: test_no_module_imports_a_higher_layer)."""
    files = {str(path.relative_to(REPO / "rmkit")) for path in (REPO / "rmkit").rglob("*.py") if path.name != "__init__.py"}
    assert documented_modules() == files
    assert "rmkit.config.*" in LAYERS[0] and LAYERS[1] == ["rmkit.data.*"] and "rmkit.apps.*" in LAYERS[-1]


def test_every_module_reads_in_one_sitting():
    """A module over 400 lines holds more than one job: split it (as config/sections.py was)."""
    lengths = {str(path.relative_to(REPO)): len(path.read_text().splitlines()) for path in (REPO / "rmkit").rglob("*.py")}
    assert {path: length for path, length in lengths.items() if length > 400} == {}


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted((REPO / "rmkit").rglob("*.py")):
        module = module_name(path)
        if module == "rmkit":
            continue
        for target in sorted(rmkit_imports(path)):
            if target != "rmkit" and layer_of(target) > layer_of(module):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_circles():
    """No module needs itself through others (imports for type checking count: they say the same)."""
    paths = {module_name(path): path for path in sorted((REPO / "rmkit").rglob("*.py"))}
    graph = {module: {t for t in rmkit_imports(path) if t in paths and t != module} for module, path in paths.items()}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        return seen

    assert sorted(module for module in graph if module in reachable(module)) == []


def test_help_imports_no_heavy_library():
    code = f"HEAVY = {HEAVY!r}\n" + HELP_EVERY_VERB
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
