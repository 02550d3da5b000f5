"""The ranges a section's numeric keys keep to, checked as each section is built."""

from __future__ import annotations

from typing import Any

from rmkit.errors import ConfigError

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
