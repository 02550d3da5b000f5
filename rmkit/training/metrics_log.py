"""A training run's metrics: ``metrics.jsonl`` and Accelerate's trackers."""

from __future__ import annotations

import json
from pathlib import Path

from rmkit.atomic_files import write_atomic
from rmkit.config.sections import Recipe
from rmkit.conversation import RecordError


class MetricsLog:
    """``metrics.jsonl`` (main process) plus Accelerate's trackers (TensorBoard…)."""

    def __init__(self, accelerator, path: Path, resume_step: int | None):
        self.accelerator, self.path = accelerator, path
        if accelerator.is_main_process:
            self._truncate_after(resume_step)

    def _truncate_after(self, step: int | None) -> None:
        """Drop lines an interrupted run wrote after its checkpoint (and a line it was cut off
        writing), so the resumed log reads as one run."""
        if step is None or not self.path.exists():
            self.path.unlink(missing_ok=True)
            return
        kept = [record for record in read_metrics(self.path) if record["step"] <= step]
        write_atomic(self.path, "".join(json.dumps(record) + "\n" for record in kept))

    def write(self, step: int, metrics: dict) -> None:
        self.accelerator.log(metrics, step=step)
        if self.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``, less a torn last line (a run interrupted, or still
    writing); a damaged line with lines after it is a :class:`RecordError`."""
    lines, records = path.read_text(errors="replace").splitlines(), []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if number == len(lines):  # the torn tail of an interrupted write
                break
            raise RecordError("damaged line with lines after it; not an interrupted write", source=f"{path}:{number}") from None
    return records


def tracker_config(recipe: Recipe) -> dict:
    """The recipe flattened to scalars, as TensorBoard's hparams want."""
    flat = {}
    for section, values in recipe.to_dict().items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat
