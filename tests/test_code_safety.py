"""No unsafe loading or shelling out in rmkit/ and scripts/, checked on the syntax tree:
``yaml.load`` without a safe loader (or ``unsafe_load`` / ``full_load``), ``pickle`` and its
kin, ``torch.load`` without ``weights_only=True``, ``trust_remote_code=True`` as a default or
an argument, ``shell=True``, ``os.system`` / ``os.popen``, ``eval`` / ``exec``."""

import ast

from tests.conftest import REPO

SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}


def _name(node: ast.AST) -> str:
    """``yaml.load`` for the callee ``yaml.load``; '' for anything not a dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _name(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def findings(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: what`` for each unsafe construct in ``source``."""
    found = []

    def flag(node: ast.AST, what: str) -> None:
        found.append((node.lineno, f"{filename}:{node.lineno}: {what}"))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    flag(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            flag(node, f"from {node.module} import")
        elif isinstance(node, ast.Call):
            callee = _name(node.func)
            last = callee.rsplit(".", 1)[-1]
            if callee in ("yaml.load", "yaml.load_all"):
                loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
                if _name(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                    flag(node, f"{callee} without a safe Loader")
            elif callee in ("yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all"):
                flag(node, callee)
            elif callee == "torch.load" and not _is_true(_keyword(node, "weights_only")):
                flag(node, "torch.load without weights_only=True")
            elif callee in ("os.system", "os.popen", "eval", "exec"):
                flag(node, callee)
            if _is_true(_keyword(node, "shell")):
                flag(node, f"{callee or last}(shell=True)")
            if _is_true(_keyword(node, "trust_remote_code")):
                flag(node, f"{callee or last}(trust_remote_code=True)")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            pairs = list(zip(positional[len(positional) - len(arguments.defaults) :], arguments.defaults))
            pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None]
            for argument, default in pairs:
                if argument.arg == "trust_remote_code" and _is_true(default):
                    flag(node, f"{node.name}(trust_remote_code=True) as a default")
        elif isinstance(node, ast.AnnAssign) and _name(node.target) == "trust_remote_code" and _is_true(node.value):
            flag(node, "trust_remote_code = True as a default")
    return [text for _, text in sorted(found, key=lambda hit: hit[0])]


def test_the_scan_finds_each_unsafe_construct():
    source = """
import pickle
from dill import loads
import yaml, torch, subprocess, os
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
yaml.full_load(text)
torch.load(path)
torch.load(path, weights_only=False)
subprocess.run(cmd, shell=True)
os.system(cmd)
AutoModel.from_pretrained(path, trust_remote_code=True)
def load(path, trust_remote_code=True): ...
class Config:
    trust_remote_code: bool = True
"""
    assert [line.split(": ", 1)[1] for line in findings(source)] == [
        "import pickle", "from dill import", "yaml.load without a safe Loader", "yaml.load without a safe Loader",
        "yaml.full_load", "torch.load without weights_only=True", "torch.load without weights_only=True",
        "subprocess.run(shell=True)", "os.system", "AutoModel.from_pretrained(trust_remote_code=True)",
        "load(trust_remote_code=True) as a default", "trust_remote_code = True as a default",
    ]  # fmt: skip
    safe = """
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
yaml.load(text, yaml.CSafeLoader)
torch.load(path, weights_only=True)
subprocess.run([cmd, arg], check=True)
AutoModel.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
def load(path, trust_remote_code=False): ...
"""
    assert findings(safe) == []


def test_rmkit_and_scripts_load_nothing_unsafely():
    files = sorted([*(REPO / "rmkit").rglob("*.py"), *(REPO / "scripts").rglob("*.py")])
    assert len(files) > 40
    found = [hit for path in files for hit in findings(path.read_text(), str(path.relative_to(REPO)))]
    assert found == []
