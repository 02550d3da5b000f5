"""How much memory vLLM's KV cache gets on CPU: what the run needs, capped by what is free.

On a GPU, vLLM sizes its cache as ``gpu_memory_utilization`` of the device, and the device is
the engine's own. On CPU the same fraction is taken of the whole NUMA node, minus what the
process already holds, so one recipe fails on a smaller node (a negative cache) and hoards a
bigger one. There rmkit asks vLLM for an explicit size instead (``kv_cache_memory_bytes``):
room for every sequence one call keeps in flight at the longest length the engine takes,
at most :data:`FREE_SHARE` of the memory free now (the weights, activations and the reward
model need the rest), and never less than one full-length sequence, which vLLM requires.
vLLM's own ``VLLM_CPU_KVCACHE_SPACE`` (GiB), when set, still wins.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from rmkit.errors import ConfigError

GiB = 1 << 30
FREE_SHARE = 0.5  # of the memory free when the engine starts
MAX_NUM_SEQS = 256  # vLLM's scheduler default on CPU: more requests than this wait their turn
# A sequence's cache is whole blocks (up to 256 tokens on CPU), and the pool holds one block back.
BLOCK_SLACK_TOKENS = 2 * 256


@dataclass(frozen=True)
class KvShape:
    """What one token costs in the cache, and the longest sequence the engine takes."""

    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int
    max_model_len: int

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes  # keys and values


def kv_shape(model_path: str, dtype: str, max_model_len: int | None) -> KvShape:
    """The KV shape of a model folder or hub id, read from its config (no weights loaded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    text = config.get_text_config()
    heads = text.num_attention_heads
    if dtype == "auto":
        dtype = str(getattr(text, "dtype", None) or getattr(config, "dtype", None) or "float32").removeprefix("torch.")
    return KvShape(
        layers=text.num_hidden_layers,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        dtype_bytes=4 if dtype == "float32" else 2,
        max_model_len=max_model_len or text.max_position_embeddings,
    )


def kv_cache_bytes(shape: KvShape, sequences: int, free_bytes: int, length_setting: str) -> int:
    """Bytes for ``sequences`` full-length sequences, capped by the free memory.

    Raises a one-line :class:`ConfigError` naming ``length_setting`` when not even one
    sequence of ``max_model_len`` tokens fits.
    """
    per_sequence = shape.bytes_per_token * (shape.max_model_len + BLOCK_SLACK_TOKENS)
    budget = int(free_bytes * FREE_SHARE)
    if per_sequence > budget:
        raise ConfigError(
            f"vLLM's KV cache needs {per_sequence / GiB:.2f} GiB for one sequence of {shape.max_model_len} tokens, "
            f"but only {free_bytes / GiB:.2f} GiB of memory is free ({FREE_SHARE:.0%} of it may go to the cache): "
            f"lower {length_setting}, or free memory"
        )
    return min(per_sequence * min(max(sequences, 1), MAX_NUM_SEQS), budget)


def free_memory_bytes() -> int:
    """Memory free on the NUMA node vLLM's CPU worker binds to (cgroup limits honoured), as vLLM counts it."""
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

    return get_memory_node_info(get_allowed_cpu_list()[0].numa_node).available_memory


def engine_memory_args(
    model_path: str, dtype: str, max_model_len: int | None, sequences: int, length_setting: str, gpu_memory_utilization: float
) -> dict:
    """The memory arguments for ``vllm.LLM``: an explicit KV size on CPU, the recipe's fraction on GPU."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu() or os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        return {"gpu_memory_utilization": gpu_memory_utilization}
    shape = kv_shape(model_path, dtype, max_model_len)
    size = kv_cache_bytes(shape, sequences, free_memory_bytes(), length_setting)
    return {"kv_cache_memory_bytes": int(math.ceil(size))}
