"""vLLM's CPU KV cache is sized from what the run needs, not from a share of the host."""

import pytest

from rmkit.errors import ConfigError
from rmkit.models.kv_cache import BLOCK_SLACK_TOKENS, FREE_SHARE, MAX_NUM_SEQS, GiB, KvShape, kv_cache_bytes, kv_shape

# SmolLM2-135M in bf16: 30 layers, 3 KV heads of 64.
SMOLLM2 = KvShape(layers=30, kv_heads=3, head_dim=64, dtype_bytes=2, max_model_len=2048)
ONE_SEQUENCE = SMOLLM2.bytes_per_token * (2048 + BLOCK_SLACK_TOKENS)


def test_bytes_per_token_counts_keys_and_values_of_every_layer():
    assert SMOLLM2.bytes_per_token == 2 * 30 * 3 * 64 * 2


def test_kv_shape_reads_the_model_config(tiny_llama):
    shape = kv_shape(str(tiny_llama), "float32", None)
    assert shape == KvShape(layers=2, kv_heads=2, head_dim=64, dtype_bytes=4, max_model_len=1024)
    assert kv_shape(str(tiny_llama), "bfloat16", 96).max_model_len == 96
    assert kv_shape(str(tiny_llama), "bfloat16", 96).dtype_bytes == 2


@pytest.mark.parametrize("free_gib", [8, 13.5, 24, 64, 128])
def test_the_size_is_the_need_whatever_the_host_holds(free_gib):
    # 8 prompts x 4 candidates: the same cache on every host with room for it
    assert kv_cache_bytes(SMOLLM2, 32, int(free_gib * GiB), "sample.max_model_len") == 32 * ONE_SEQUENCE


def test_a_large_need_is_capped_by_the_free_memory():
    free = 4 * GiB
    assert kv_cache_bytes(SMOLLM2, 256, free, "sample.max_model_len") == int(free * FREE_SHARE)


def test_more_sequences_than_the_scheduler_runs_at_once_need_no_more_cache():
    free = 1024 * GiB
    assert kv_cache_bytes(SMOLLM2, 10 * MAX_NUM_SEQS, free, "x") == kv_cache_bytes(SMOLLM2, MAX_NUM_SEQS, free, "x")


def test_not_even_one_sequence_fits_names_the_setting_and_the_numbers():
    long = KvShape(layers=80, kv_heads=8, head_dim=128, dtype_bytes=2, max_model_len=131072)  # a 70B model at 128k
    with pytest.raises(ConfigError) as err:
        kv_cache_bytes(long, 1, 13 * GiB, "sample.max_model_len")
    message = str(err.value)
    assert "\n" not in message
    assert "lower sample.max_model_len" in message
    assert "40.16 GiB for one sequence of 131072 tokens" in message
    assert "13.00 GiB of memory is free" in message


def test_cpu_engines_get_an_explicit_size_and_vllms_own_setting_wins(tiny_llama, monkeypatch):
    pytest.importorskip("vllm")
    from vllm.platforms import current_platform

    from rmkit.models import kv_cache

    if not current_platform.is_cpu():
        pytest.skip("the CPU sizing applies to vLLM's CPU platform")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.setattr(kv_cache, "free_memory_bytes", lambda: 13 * GiB)
    args = kv_cache.engine_memory_args(str(tiny_llama), "float32", 256, 8, "sample.max_model_len", 0.05)
    per_token = 2 * 2 * 2 * 64 * 4
    assert args == {"kv_cache_memory_bytes": 8 * per_token * (256 + BLOCK_SLACK_TOKENS)}
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    assert kv_cache.engine_memory_args(str(tiny_llama), "float32", 256, 8, "sample.max_model_len", 0.05) == {
        "gpu_memory_utilization": 0.05
    }
