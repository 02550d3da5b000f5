"""Counts of everything the data pipeline skipped, dropped or shortened: never silent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class DataReport:
    files: list[str] = field(default_factory=list)  # the files read (or the hub dataset and split)
    read: int = 0  # records read from the source
    kept: int = 0  # records that reached the model
    skipped: Counter = field(default_factory=Counter)  # bad records, by reason (on_error: skip)
    dropped: Counter = field(default_factory=Counter)  # good records that could not fit, by reason
    truncated: Counter = field(default_factory=Counter)  # kept, but shortened, by how

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "read": self.read,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "dropped": dict(self.dropped),
            "truncated": dict(self.truncated),
        }

    def summary(self) -> str:
        parts = [f"read {self.read}", f"kept {self.kept}"]
        for name in ("skipped", "dropped", "truncated"):
            counts = getattr(self, name)
            if counts:
                parts.append(f"{name} {sum(counts.values())} (" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")")
        return "; ".join(parts)
