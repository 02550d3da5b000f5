"""Training checkpoints: save, find, load, and the check that refuses to resume a run whose
result-affecting settings changed."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rmkit import logs
from rmkit.atomic_files import write_json
from rmkit.config.fingerprint import differences, fingerprint
from rmkit.config.sections import Recipe
from rmkit.errors import ConfigError

CHECKPOINTS = "checkpoints"
STATE_FILE = "rmkit_state.json"  # written last: a checkpoint without it is incomplete
TRAINING_SECTIONS = ("model", "data", "lora", "train")  # what a checkpoint's settings fingerprint covers


@dataclass
class Progress:
    """Where training stands; saved with every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_in_epoch: int = 0  # global batches of ``epoch`` already trained on
    tokens: int = 0  # real (unpadded) tokens seen, all processes
    padded_tokens: int = 0
    train_seconds: float = 0.0
    total_steps: int = 0
    loss_window: list[float] = field(default_factory=list)  # micro-batch losses since the last log line
    fingerprint: dict | None = None  # the run's result-affecting settings (rmkit.config.fingerprint.fingerprint)


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    found = [p for p in (output_dir / CHECKPOINTS).glob("step-*") if (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def find_resume_checkpoint(resume: str, output_dir: Path) -> Path | None:
    """The checkpoint ``train.resume`` asks for: the latest (auto), none (never) or a path.

    ``auto`` passes over damaged checkpoints (:func:`damage`), newest first, saying so in one line each.
    """
    if resume == "never":
        if checkpoint_dirs(output_dir):
            raise ConfigError(
                f"{output_dir} holds checkpoints of an earlier run; use train.resume=auto to continue it, "
                "--overwrite to start over, or another train.output_dir"
            )
        return None
    if resume == "auto":
        found = checkpoint_dirs(output_dir)
        for newest, older in zip(reversed(found), [*reversed(found[:-1]), None]):
            why = damage(newest)
            if why is None:
                return newest
            if older is None:
                raise ConfigError(
                    f"{newest} is damaged ({why}), and no earlier checkpoint is left: rerun with --overwrite to start over"
                )
            logs.note(f"checkpoint {newest} is damaged ({why}): trying {older.name}", warning=True)
        return None
    path = Path(resume)
    if not (path / STATE_FILE).exists():
        raise ConfigError(f"train.resume={resume}: not a complete rmkit checkpoint (no {STATE_FILE})")
    if why := damage(path):
        raise ConfigError(f"train.resume={resume}: the checkpoint is damaged ({why})")
    return path


def damage(checkpoint: Path) -> str | None:
    """Why a checkpoint with its state file cannot be loaded, else None: a file cut short or unreadable.

    A checkpoint is synced by nobody, so a crash of the machine (not of the process, which
    leaves no state file) can leave it with short files. Checked without loading anything:
    the state file parses, each safetensors file is as long as its header says, and each
    ``torch.save`` file (``.bin``, ``.pkl``, ``.pt``) is a whole zip archive.
    """
    try:
        Progress(**json.loads((checkpoint / STATE_FILE).read_text()))
    except (ValueError, TypeError) as err:
        return f"{STATE_FILE}: {str(err).splitlines()[0][:120]}"
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        name = path.relative_to(checkpoint)
        if path.suffix == ".safetensors":
            if why := _safetensors_damage(path):
                return f"{name}: {why}"
        elif path.suffix in (".bin", ".pkl", ".pt", ".pth"):
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.infolist()
            except (zipfile.BadZipFile, OSError):
                return f"{name}: not a whole torch.save archive"
    return None


def _safetensors_damage(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8 or (header_size := int.from_bytes(prefix, "little")) > size - 8:
            return f"{size} bytes, cut short in its header"
        try:
            header = json.loads(f.read(header_size))
        except ValueError:
            return "unreadable header"
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    return None if 8 + header_size + end == size else f"{size} bytes where its header says {8 + header_size + end}"


def check_same_settings(checkpoint: Path, recipe: Recipe) -> None:
    """Refuse to resume a checkpoint trained with other result-affecting settings (LR schedule, data split…)."""
    saved = json.loads((checkpoint / STATE_FILE).read_text()).get("fingerprint")
    changes = differences(saved, fingerprint(recipe, TRAINING_SECTIONS)) if saved else []
    if changes:
        raise ConfigError(
            f"{checkpoint} was trained with other settings: {'; '.join(changes)}; "
            "rerun with --overwrite to start over, or choose another train.output_dir"
        )


def save_checkpoint(accelerator, output_dir: Path, progress: Progress, keep: int) -> Path:
    """Save model, optimizer, scheduler and RNG states, then the progress, then rotate."""
    path = output_dir / CHECKPOINTS / f"step-{progress.step}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        write_json(path / STATE_FILE, asdict(progress))
        for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(accelerator, path: Path, total_steps: int) -> Progress:
    progress = Progress(**json.loads((path / STATE_FILE).read_text()))
    if progress.total_steps != total_steps:
        raise ConfigError(
            f"{path} is from a run of {progress.total_steps} steps, this recipe makes {total_steps}; "
            "resume with the same data and train settings, or use a new output_dir"
        )
    accelerator.load_state(str(path))
    return progress
