"""The run folder: results appended per prompt, resumed after any interruption.

    RUN/
      recipe.yaml        the recipe the run was started with (the stage verbs read it)
      run.json           fingerprint of the result-affecting settings, shard, prompt report, timings
      candidates.jsonl   one line per candidate, a prompt's n lines at once (rmkit.sampling.generate)
      sft.jsonl, pairs.jsonl, stats.json, alpaca_eval_outputs.json   what `rmkit select` writes from the rewards
      model_answer/MODEL_ID.jsonl   FastChat MT-bench answers, in FastChat's own layout

A prompt's lines are written together, flushed and synced once it is done, so even
``kill -9`` loses only the prompts in flight; a torn tail is cut off on the next start, and
prompts already in the file are skipped. A recipe whose result-affecting settings differ
from the folder's is refused unless the caller overwrites. ``--shard i/n`` gives each
machine every n-th prompt; :func:`merge_runs` joins the shard folders back in prompt order.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rmkit.atomic_files import write_atomic, write_jsonl
from rmkit.config.fingerprint import differences
from rmkit.config.recipe import dump_recipe
from rmkit.config.sections import Recipe
from rmkit.errors import ConfigError, DataError

MODEL_ANSWERS = "model_answer"  # FastChat's folder name (fastchat/llm_judge/data/mt_bench/model_answer)
OUTPUTS = ("sft.jsonl", "pairs.jsonl", "stats.json", MODEL_ANSWERS, "alpaca_eval_outputs.json")  # rmkit select's


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n) → (i, n)."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def shard_items(items: list, shard: tuple[int, int] | None) -> list:
    """Every n-th item from the i-th: deterministic, balanced, independent of the machine."""
    return items if shard is None else items[shard[0] :: shard[1]]


def read_log(path: Path) -> tuple[list[list[dict]], int]:
    """The complete prompts of a candidates log (groups of ``n`` lines) and the bytes they take.

    A prompt's lines are written at once, so only the end of the file can be cut short (a
    torn line, or a prompt missing its last lines); that tail is left out. Damage with
    whole records after it did not come from an interruption and is an error.
    """
    if not path.exists():
        return [], 0
    lines = path.read_bytes().split(b"\n")
    groups, group, end, position = [], [], 0, 0
    for number, raw in enumerate(lines, 1):
        whole = number < len(lines)  # a newline follows
        position += len(raw) + whole
        if not raw.strip():
            end = end if group else position
            continue
        record = _json_line(raw) if whole else None
        if record is None or (group and record["prompt_id"] != group[0]["prompt_id"]):
            if any(later.strip() for later in lines[number:]):
                raise DataError(f"{path}:{number}: damaged line with records after it; not an interrupted write")
            break
        group.append(record)
        if len(group) == record["n"]:
            groups.append(group)
            group, end = [], position
    return groups, end


def _json_line(raw: bytes) -> dict | None:
    try:
        record = json.loads(raw)
    except ValueError:  # JSON or UTF-8 cut short
        return None
    return record if isinstance(record, dict) and "prompt_id" in record and "n" in record else None


class CandidateLog:
    """Append-only candidates file: a prompt's lines in one write, flushed and synced."""

    def __init__(self, path: Path):
        self.path = path
        self.groups, end = read_log(path)
        if path.exists() and path.stat().st_size != end:
            with open(path, "r+b") as f:  # cut the torn tail so the next prompt starts on a clean line
                f.truncate(end)
        self.done = {group[0]["prompt_id"] for group in self.groups}

    def append(self, group: list[dict]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in group))
            f.flush()
            os.fsync(f.fileno())
        self.done.add(group[0]["prompt_id"])


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.recipe_path = self.path / "recipe.yaml"
        self.state_path = self.path / "run.json"
        self.candidates = self.path / "candidates.jsonl"
        self.rescoring = self.path / "candidates.rescoring.jsonl"  # a re-score in progress
        try:
            self.state: dict = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        except ValueError as err:  # not JSON, or not UTF-8: written by something other than rmkit
            raise DataError(
                f"{self.state_path} is damaged ({err}): start the run over (--overwrite), or restore the file"
            ) from None

    def exists(self) -> bool:
        return self.state_path.exists()

    def groups(self) -> list[list[dict]]:
        """The finished prompts' candidate lines, each prompt once (its first group wins), in
        prompt-file order (``order``; Ray workers' chunks are appended as they finish)."""
        seen, out = set(), []
        for group in read_log(self.candidates)[0]:
            if group[0]["prompt_id"] not in seen:
                seen.add(group[0]["prompt_id"])
                out.append(group)
        return sorted(out, key=lambda group: group[0].get("order", 0))  # stable: files written by hand keep their order

    def start(self, recipe: Recipe, fp: dict, shard: tuple[int, int] | None, overwrite: bool) -> None:
        """Create the folder, or check that ``recipe`` matches the run it holds."""
        if self.exists() and overwrite:
            for name in ("candidates.jsonl", "candidates.rescoring.jsonl", "run.json", *OUTPUTS):
                if (self.path / name).is_dir():
                    shutil.rmtree(self.path / name)
                else:
                    (self.path / name).unlink(missing_ok=True)
            self.state = {}
        if self.exists():
            old_shard = tuple(self.state["shard"]) if self.state.get("shard") else None
            changes = differences(self.state["fingerprint"], fp)
            if old_shard != shard:
                changes.append(f"shard: {old_shard} -> {shard}")
            if changes:
                raise ConfigError(
                    f"{self.path} holds a run with other settings:\n  "
                    + "\n  ".join(changes)
                    + "\nrerun with --overwrite to start it over, or choose another output folder"
                )
            # Sections the earlier stages did not use (e.g. score after `rmkit sample`) are adopted.
            self.state["fingerprint"] = {k: self.state["fingerprint"].get(k) or v for k, v in fp.items()}
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self.state = {"fingerprint": fp, "shard": list(shard) if shard else None, "timings": {}}
        dump_recipe(recipe, self.recipe_path)
        self.save()

    def outputs(self) -> list[str]:
        """The outputs of `rmkit select` present in the folder."""
        return [name for name in OUTPUTS if (self.path / name).exists()]

    def stale_note(self) -> str | None:
        """A line saying which outputs predate the last re-score, or None when they are current."""
        stale = [name for name in self.state.get("stale_outputs", []) if (self.path / name).exists()]
        if not stale:
            return None
        return (
            f"{', '.join(stale)} in {self.path} hold the selection by the rewards before the last `rmkit score`: "
            f"`rmkit select {self.path}` writes them from the current rewards"
        )

    def save(self) -> None:
        write_atomic(self.state_path, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    def add_timing(self, stage: str, **amounts: float) -> None:
        """Accumulate seconds and counts per stage over every session of the run."""
        timing = self.state.setdefault("timings", {}).setdefault(stage, {})
        for key, value in amounts.items():
            timing[key] = timing.get(key, 0) + value


def merge_runs(output: str | Path, shards: list[str | Path], overwrite: bool = False) -> RunFolder:
    """Join finished shard folders of one run into ``output``, in the original prompt order."""
    folders = [RunFolder(path) for path in shards]
    for folder in folders:
        if not folder.exists():
            raise ConfigError(f"{folder.path} is not a run folder (no run.json)")
    first = folders[0]
    specs = [tuple(f.state["shard"]) if f.state.get("shard") else None for f in folders]
    if None in specs:
        raise ConfigError(f"{shards[specs.index(None)]} is not a shard (it was run without --shard)")
    count = specs[0][1]
    missing = sorted(set(range(count)) - {i for i, _ in specs})
    if any(n != count for _, n in specs) or len(set(specs)) != len(specs) or missing:
        raise ConfigError(
            f"shards {[f'{i}/{n}' for i, n in specs]} are not one complete split" + (f"; missing {missing}" if missing else "")
        )
    for folder in folders[1:]:
        changes = differences(first.state["fingerprint"], folder.state["fingerprint"])
        if changes:
            raise ConfigError(f"{folder.path} was run with other settings than {first.path}:\n  " + "\n  ".join(changes))
    groups: dict[str, list[dict]] = {}
    for folder in folders:
        done, expected = folder.groups(), folder.state.get("prompts", {}).get("in_shard")
        if expected is not None and len(done) < expected:
            raise ConfigError(f"{folder.path} is unfinished: {len(done)} of {expected} prompts; rerun its command first")
        for group in done:
            groups.setdefault(group[0]["prompt_id"], group)
    out = RunFolder(output)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out.path} already holds a run; rerun with --overwrite to replace it")
    out.path.mkdir(parents=True, exist_ok=True)
    ordered = sorted(groups.values(), key=lambda group: group[0]["order"])
    write_jsonl(out.candidates, [line for group in ordered for line in group])
    (out.path / first.recipe_path.name).write_text(first.recipe_path.read_text())
    out.state = {"fingerprint": first.state["fingerprint"], "shard": None, "timings": {}, "merged_from": [str(p) for p in shards]}
    out.state["prompts"] = {**first.state.get("prompts", {}), "in_shard": len(groups)}
    for folder in folders:
        for stage, amounts in folder.state.get("timings", {}).items():
            out.add_timing(stage, **amounts)
    out.save()
    return out
