"""The parts of a section: :func:`setting`, one key with its default, help and whether it affects
results; and the ranges numeric keys keep to (:func:`check_range`), checked as a section is built."""

from __future__ import annotations

import copy
from dataclasses import field
from typing import Any

from rmkit.errors import ConfigError


def setting(default: Any, help: str, *, neutral: bool = False) -> Any:
    """A recipe key: a dataclass field whose metadata holds its ``help`` (what ``rmkit config show``
    and the verbs' flags print, as TRL's ``field(metadata={"help": ...})``) and ``neutral``: the key
    changes speed, memory, logging or where outputs go, but not what is trained, generated or
    scored, so a run resumes across a change of it (:mod:`rmkit.config.fingerprint`). A list or
    mapping default is copied for each instance."""
    metadata = {"help": help, "neutral": neutral}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# The ranges numeric settings keep to; each rule's words are its message ("must be at least 1, got 0").
RANGES = {
    "at least 1": lambda value: value >= 1,
    "at least 0": lambda value: value >= 0,
    "above 0": lambda value: value > 0,
    "in [0, 1)": lambda value: 0 <= value < 1,
    "in (0, 1]": lambda value: 0 < value <= 1,
    "in [0, 1]": lambda value: 0 <= value <= 1,
    "in [-2, 2]": lambda value: -2 <= value <= 2,  # vLLM's presence and frequency penalties
}


def check_range(section: str, config: Any, rule: str, *keys: str) -> None:
    """Raise :class:`ConfigError` naming ``section.key`` for the first of ``keys`` whose value breaks
    ``rule`` (a key of :data:`RANGES`); None (unset) passes, and so does a word such as "auto"."""
    for key in keys:
        value = getattr(config, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not RANGES[rule](value):
            raise ConfigError(f"{section}.{key} must be {rule}, got {value}")
