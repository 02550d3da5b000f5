"""A run's fingerprint: its result-affecting settings, which a resumed run must not change.

Training checkpoints record the model, data, lora and train sections; run folders the sample
and score sections. A key marked ``neutral`` (:func:`rmkit.config.fields.setting`: it changes
only speed, memory, logging or where outputs go) is left out, so changing it resumes the run.
"""

from __future__ import annotations

import dataclasses

from rmkit.config.sections import SECTIONS, Recipe

FINGERPRINTED = ("model", "data", "lora", "train", "sample", "score")  # the sections a fingerprint has a place for


def neutral_keys(section: str) -> set[str]:
    """The keys of a recipe section that no result depends on."""
    return {key.name for key in dataclasses.fields(SECTIONS[section]) if key.metadata["neutral"]}


def fingerprint(recipe: Recipe, sections: tuple[str, ...]) -> dict:
    """The result-affecting settings of ``sections`` (a section not in use is None)."""
    out = {}
    for name in FINGERPRINTED:
        values = dataclasses.asdict(getattr(recipe, name))
        if name == "score" and not values["scorers"]:  # reward_model alone: as before scorers existed, so older runs resume
            del values["scorers"]
        neutral = neutral_keys(name)
        out[name] = {k: v for k, v in values.items() if k not in neutral} if name in sections else None
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
