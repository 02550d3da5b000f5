"""A run's fingerprint: its result-affecting settings, which a resumed run must not change.

Training checkpoints record the model, data, lora and train sections; run folders the sample
and score sections. A setting that changes only speed, memory, logging or where outputs go
is left out (:data:`RESULT_NEUTRAL`), so changing it resumes the run.
"""

from __future__ import annotations

import dataclasses

from rmkit.config.sections import Recipe

# Settings that change speed, memory, logging or where outputs go, but not what is trained,
# generated or scored. Training checkpoints record the first four sections, run folders the last two.
RESULT_NEUTRAL = {
    "model": {"trust_remote_code", "gradient_checkpointing"},
    "data": {"on_error"},
    "lora": set(),
    "train": {
        "output_dir", "eval_batch_size", "pad_to_multiple_of", "eval_steps", "save_steps", "save_total_limit",
        "resume", "logging_steps", "report_to", "merge", "tokens_per_backward",
    },
    "sample": {
        "chunk_size", "batch_size", "tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization", "enforce_eager",
        "output_dir", "executor", "workers",
    },
    "score": {"batch_size", "gpu_memory_utilization", "enforce_eager", "verifier_workers"},
}


def fingerprint(recipe: Recipe, sections: tuple[str, ...]) -> dict:
    """The result-affecting settings of ``sections`` (a section not in use is None)."""
    out = {}
    for name in RESULT_NEUTRAL:
        values = dataclasses.asdict(getattr(recipe, name))
        if name == "score" and not values["scorers"]:  # reward_model alone: as before scorers existed, so older runs resume
            del values["scorers"]
        out[name] = {k: v for k, v in values.items() if k not in RESULT_NEUTRAL[name]} if name in sections else None
    return out


def differences(old: dict, new: dict) -> list[str]:
    """``section.key: old -> new`` for every setting both fingerprints record."""
    changes = []
    for section in new:
        if old.get(section) is None or new[section] is None:
            continue
        for key in sorted(set(old[section]) | set(new[section])):
            if old[section].get(key) != new[section].get(key):
                changes.append(f"{section}.{key}: {old[section].get(key)!r} -> {new[section].get(key)!r}")
    return changes
