"""On a CPU of few cores vLLM's engine computes on all of them; elsewhere vLLM decides."""

import os

import pytest

from rmkit.models import cpu_threads
from rmkit.models.cpu_threads import RESERVED, engine_cores


@pytest.fixture
def cores(monkeypatch):
    monkeypatch.delenv(RESERVED, raising=False)

    def set_cores(n):
        monkeypatch.setattr(cpu_threads, "usable_cores", lambda: n)

    return set_cores


@pytest.mark.parametrize("n", [1, 2, 4])
def test_few_cores_reserve_none_while_the_engine_starts(cores, n):
    cores(n)
    with engine_cores(is_cpu=True):
        assert os.environ[RESERVED] == "0"  # the engine processes spawned here inherit it
    assert RESERVED not in os.environ  # and the caller's environment is as it was


def test_many_cores_or_a_gpu_keep_vllms_default(cores):
    cores(64)
    with engine_cores(is_cpu=True):
        assert RESERVED not in os.environ
    cores(2)
    with engine_cores(is_cpu=False):
        assert RESERVED not in os.environ


def test_the_users_setting_wins(cores, monkeypatch):
    cores(2)
    monkeypatch.setenv(RESERVED, "1")
    with engine_cores(is_cpu=True):
        assert os.environ[RESERVED] == "1"
    assert os.environ[RESERVED] == "1"


def test_restored_when_the_engine_fails_to_start(cores):
    cores(2)
    with pytest.raises(RuntimeError), engine_cores(is_cpu=True):
        raise RuntimeError("engine core initialization failed")
    assert RESERVED not in os.environ
