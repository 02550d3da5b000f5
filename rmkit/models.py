"""Built-in models by short name (filled in by the default-model work)."""

from __future__ import annotations


def resolve_model(name_or_path: str) -> str:
    """A local folder or hub id for ``name_or_path``; short names map to built-in models."""
    return name_or_path
