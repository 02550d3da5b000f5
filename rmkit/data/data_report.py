"""Counts of everything the data pipeline skipped, dropped or shortened: never silent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Past these shares the data mostly do not reach the model, and one line says so.
MOST_DROPPED = 0.5  # of the pairs that were encoded: dropped, e.g. too long for max_length
MANY_UNKNOWN = 0.05  # of the tokens encoded: the tokenizer's unknown token (text its vocabulary lacks)


@dataclass
class DataReport:
    files: list[str] = field(default_factory=list)  # the files read (or the hub dataset and split)
    read: int = 0  # records read from the source
    kept: int = 0  # records that reached the model
    skipped: Counter = field(default_factory=Counter)  # bad records, by reason (on_error: skip)
    dropped: Counter = field(default_factory=Counter)  # good records that could not fit, by reason
    truncated: Counter = field(default_factory=Counter)  # kept, but shortened, by how
    tokens: int = 0  # token ids of the kept pairs, both sides (counted where the tokenizer has an unknown token)
    unknown_tokens: int = 0  # of them, the tokenizer's unknown token
    warnings: list[str] = field(default_factory=list)  # what :meth:`check` found

    def count_tokens(self, ids: list[int], unknown: int | None) -> None:
        """Count an encoded sequence, and its unknown tokens, when the tokenizer has one (``unknown``)."""
        if unknown is not None:
            self.tokens += len(ids)
            self.unknown_tokens += ids.count(unknown)

    def check(self, length_key: str, unknown_token: str | None = None) -> list[str]:
        """Lines warning that most pairs were dropped, or that much of the text is the unknown
        token; kept in ``warnings``. ``length_key`` names the length setting that dropped them."""
        dropped = sum(self.dropped.values())
        encoded = self.kept + dropped
        if encoded and dropped / encoded > MOST_DROPPED:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items()))
            self.warnings.append(
                f"{dropped / encoded:.0%} of the pairs ({dropped} of {encoded}) were dropped ({reasons}): "
                f"their reply alone is longer than {length_key}; raise it, "
                "or use a tokenizer that needs fewer tokens for this text"
            )
        if self.tokens and self.unknown_tokens / self.tokens > MANY_UNKNOWN:
            self.warnings.append(
                f"{self.unknown_tokens / self.tokens:.0%} of the tokens ({self.unknown_tokens} of {self.tokens}) are the "
                f"tokenizer's unknown token {unknown_token or ''}: its vocabulary does not cover this text (another "
                "language or script?); the model reads those parts as one blank token"
            )
        return self.warnings

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "read": self.read,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "dropped": dict(self.dropped),
            "truncated": dict(self.truncated),
            "tokens": self.tokens,
            "unknown_tokens": self.unknown_tokens,
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        parts = [f"read {self.read}", f"kept {self.kept}"]
        for name in ("skipped", "dropped", "truncated"):
            counts = getattr(self, name)
            if counts:
                parts.append(f"{name} {sum(counts.values())} (" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")")
        if self.unknown_tokens:
            parts.append(f"unknown tokens {self.unknown_tokens} of {self.tokens}")
        return "; ".join(parts)
