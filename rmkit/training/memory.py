"""Memory planning for training: how many tokens each backward takes, whether to recompute
activations (gradient checkpointing), the dtype frozen weights are kept in; and the peak, and
memory handed back to the OS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmkit.config.sections import Recipe

# torch is imported where used, so `rmkit --help` stays fast.
if TYPE_CHECKING:
    import torch


def plan_memory(recipe: Recipe, model, train_set: list[dict], single_process: bool) -> dict:
    """How many tokens each backward takes (``train.tokens_per_backward``), whether to
    recompute activations (``model.gradient_checkpointing``) and the dtype frozen weights are
    kept in; what was chosen and why.

    ``auto`` holds activations to about the weights' size: the batch's pairs go backward in
    runs that fit it, and gradient checkpointing (one more forward: with LoRA, which computes no weight
    gradients for the base, half again the compute) turns on only when a run still would
    not, i.e. when one pair alone is too long. Across processes a batch is not split
    (DDP, FSDP and DeepSpeed sync at every backward) and frozen weights keep their dtype
    (sharding engines want one dtype across a layer's parameters).
    """
    from rmkit.data.batching import pair_length
    from rmkit.training.reward_model import enable_gradient_checkpointing

    per_token, weights = activation_bytes_per_token(model), weight_bytes(model)
    longest_pair = 2 * max(pair_length(e) for e in train_set)  # both sides at the longer one's length
    batch = recipe.train.per_device_batch_size * longest_pair
    setting = recipe.train.tokens_per_backward
    if not single_process:
        run_tokens, run_why = None, "the whole batch: runs are not split across processes"
    elif setting == "auto":
        run_tokens = max(weights // per_token, 1)
        run_why = f"auto: the weights' {weights / 2**20:,.0f} MiB of activations, by the 16-bit estimate"
    else:
        run_tokens, run_why = setting, "set in the recipe"
    if run_tokens is not None and run_tokens >= batch:
        run_tokens, run_why = None, f"the whole batch ({batch:,} tokens at most) fits {run_why}"
    largest_run = batch if run_tokens is None else max(run_tokens, longest_pair)

    if recipe.model.gradient_checkpointing != "auto":
        on, why = recipe.model.gradient_checkpointing, "set in the recipe"
    else:
        on = largest_run * per_token > weights
        why = (
            f"auto: a backward's estimated activations ({largest_run:,} tokens) {largest_run * per_token / 2**20:,.0f} MiB "
            f"{'>' if on else '<='} weights {weights / 2**20:,.0f} MiB"
        )
        if on:
            enable_gradient_checkpointing(model)
    frozen = store_frozen_weights(model, recipe.train.mixed_precision) if single_process else "as loaded"
    return {
        "tokens_per_backward": run_tokens,
        "tokens_per_backward_why": run_why,
        "gradient_checkpointing": on,
        "gradient_checkpointing_why": why,
        "frozen_weights_dtype": frozen,
    }


def store_frozen_weights(model, mixed_precision: str) -> str:
    """Frozen linear weights stored in the autocast dtype (:func:`store_frozen_weights_in`); the dtype they are in."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
    if dtype is None:
        return "as loaded"
    store_frozen_weights_in(model, dtype)
    return_freed_memory()  # their float32 copies
    return str(dtype).removeprefix("torch.")


def memory_line(memory: dict) -> str:
    runs = "the whole batch" if memory["tokens_per_backward"] is None else f"runs of <= {memory['tokens_per_backward']:,} tokens"
    frozen = f"; frozen weights in {memory['frozen_weights_dtype']}" if memory["frozen_weights_dtype"] != "as loaded" else ""
    return (
        f"backward: {runs} ({memory['tokens_per_backward_why']}); gradient checkpointing: "
        f"{'on' if memory['gradient_checkpointing'] else 'off'} ({memory['gradient_checkpointing_why']}){frozen}"
    )


def peak_memory() -> dict:
    """This process's peak memory: resident set (CPU side) and, on a GPU, allocated device memory."""
    import resource

    import torch

    peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux counts KiB
    if torch.cuda.is_available():
        peak["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def return_freed_memory() -> None:
    """Hand memory freed inside the process back to the OS. glibc keeps it for reuse, but freed
    weights and activations come in pieces that later tensors do not fit: measured, the merge
    after training added ~600 MB to the peak while 2 GB lay freed."""
    import ctypes
    import ctypes.util

    libc = ctypes.util.find_library("c")
    if libc and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)


def store_frozen_weights_in(model, dtype: torch.dtype) -> int:
    """Keep the frozen weights of linear layers in ``dtype``, the one autocast computes in.

    Autocast casts a float32 weight to bf16 at every forward and, as the matmul's input,
    keeps that copy for the backward: with frozen LoRA bases, a copy of the whole model per
    forward, and its cost in time. Stored in the autocast dtype, the weight is used as it is:
    the same matmuls, bit for bit, at half the weights' memory. Trainable weights (LoRA, the
    score head, full fine-tuning) stay float32. Returns how many weights were stored so.
    """
    import torch

    stored = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            for param in (module.weight, module.bias):
                if param is not None and not param.requires_grad and param.dtype == torch.float32:
                    param.data = param.data.to(dtype)
                    stored += 1
    return stored


def activation_bytes_per_token(model) -> int:
    """What training holds for backward per token, estimated at 34·hidden bytes a layer
    (Korthikanti et al. 2022, 16-bit, attention scores not kept, as sdpa does)."""
    config = model.config
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", 0)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    return 34 * hidden * layers


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())
