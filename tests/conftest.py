import contextlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(relative: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the public test data lives in ../shared/data beside the checkout")
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny chat LM folder (causal LM weights; loads as a sequence classifier too)."""
    from tests.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def reward_model(tiny_llama, tmp_path_factory) -> Path:
    """An untrained 1-label classifier on the tiny LM, with its own template (plain)."""
    from tests.tiny import build_tiny_reward_model

    return build_tiny_reward_model(tiny_llama, tmp_path_factory.mktemp("rm"), seed=1)


@pytest.fixture(scope="session")
def minilm() -> str:
    """The built-in all-MiniLM-L6-v2 folder (a 512-position encoder with a WordPiece vocabulary),
    or skip when its PyPI package is not installed."""
    from rmkit.models.builtin import ModelNotAvailable, resolve_model

    try:
        return resolve_model("minilm")
    except ModelNotAvailable as err:
        pytest.skip(str(err))


def shutdown_vllm(llm) -> None:
    """Shut a test's vLLM engine down now, while pytest still captures its output.

    vLLM caches its environment after the first engine of a process, so once a test has run
    one in process (as `rmkit chat` does) later engines are in process too and share one
    torch.distributed group, which the first shutdown may already have destroyed.
    """
    with contextlib.suppress(ValueError):
        llm.llm_engine.engine_core.shutdown()
