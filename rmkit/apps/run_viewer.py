"""The Run tab's data: a sample-and-score run folder read into the viewer's rows and text.

Pure functions of the run's files, without Gradio. A folder is opened only when it lies inside
the app's *root* (:func:`inside`), and nothing is written outside it.
"""

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from rmkit.apps.chat import format_reward
from rmkit.config.sections import SelectConfig
from rmkit.conversation import message_text
from rmkit.errors import UserError

PREVIEW = 120  # characters of a prompt shown in the prompt list
REQUIRED = ("prompt_id", "index", "messages", "turns", "reward")  # fields of a candidates.jsonl line the viewer reads


class RunError(UserError, ValueError):
    """A run folder that is missing or malformed."""


@dataclass
class Run:
    """A run folder as the viewer shows it."""

    path: Path
    groups: list[list[dict]]  # per prompt, its candidate lines (rmkit.sampling.runs)
    select: SelectConfig  # the run's select settings, to pick as `rmkit select` does
    stats: dict  # stats.json, {} before `rmkit select`

    def group(self, prompt_id: str) -> list[dict]:
        return next(g for g in self.groups if g[0]["prompt_id"] == prompt_id)

    def categories(self) -> list[str]:
        return sorted({g[0].get("category") or "" for g in self.groups})


def open_run(path: str | Path) -> Run:
    """Read a run folder, or raise :class:`RunError` saying what is wrong with it."""
    from rmkit.config.recipe import load_recipe
    from rmkit.config.sections import Recipe
    from rmkit.errors import ConfigError
    from rmkit.sampling.runs import RunFolder

    folder = RunFolder(Path(path).expanduser())
    if not folder.path.is_dir():
        raise RunError(f"{folder.path}: no such folder")
    if not folder.exists() or not folder.candidates.exists():
        raise RunError(f"{folder.path} is not a sample-and-score run: it lacks run.json or candidates.jsonl")
    try:
        groups = folder.groups()
        recipe = load_recipe(folder.recipe_path) if folder.recipe_path.exists() else Recipe()
        stats = json.loads((folder.path / "stats.json").read_text()) if (folder.path / "stats.json").exists() else {}
    except (ValueError, KeyError, TypeError, ConfigError) as err:  # JSONDecodeError is a ValueError
        raise RunError(f"{folder.path} is malformed: {err}") from None
    if not groups:
        raise RunError(f"{folder.candidates} holds no finished prompt yet")
    for number, line in enumerate((line for g in groups for line in g), 1):
        missing = [key for key in REQUIRED if key not in line]
        if missing:
            raise RunError(f"{folder.candidates}, candidate {number}: missing {', '.join(missing)}")
    return Run(folder.path, groups, recipe.select, stats)


@functools.lru_cache(maxsize=4)
def _cached_run(path: str, stamp: tuple) -> Run:  # stamp: the files' times, only part of the cache key
    return open_run(path)


def load_run(path: str | Path) -> Run:
    """:func:`open_run`, read again only when one of the files it reads changes."""
    folder = Path(path).expanduser().resolve()
    files = (folder / name for name in ("candidates.jsonl", "recipe.yaml", "stats.json"))
    return _cached_run(str(folder), tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files))


def inside(root: Path, path: str | Path) -> Path:
    """``path`` with its links resolved, if it lies in ``root``; else :class:`RunError`."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise RunError(f"{path} is outside {root}, the folder this app serves (start `rmkit ui` on a folder that holds it)")
    return resolved


def load_run_in(root: Path, path: str) -> Run:
    """The run folder ``path`` (relative to where the app runs, or absolute), if it lies in ``root``."""
    return load_run(inside(root, path))


def find_runs(root: Path) -> list[Path]:
    """Run folders in ``root`` (itself, its subfolders, theirs), for the Run tab to offer."""
    return sorted({p.parent for pattern in ("run.json", "*/run.json", "*/*/run.json") for p in root.glob(pattern)})


def selection(group: list[dict], run: Run):
    """The best candidate and DPO pair of one prompt, as ``rmkit select`` picks them."""
    from rmkit.selection.select import select_group

    return select_group(group, run.select)


def prompt_text(line: dict) -> str:
    """The user turns of a candidate's conversation (what was sampled), one per line."""
    return "\n".join(m["content"] for m in line["messages"] if m["role"] == "user")


def replies(line: dict) -> str:
    """A candidate's replies; several turns are marked ``[turn k]``."""
    if len(line["turns"]) == 1:
        return line["turns"][0]["reply"]
    return "\n\n".join(f"[turn {t}] {turn['reply']}" for t, turn in enumerate(line["turns"], 1))


def prompt_rows(run: Run, category: str | None = None) -> list[list]:
    """One row per prompt: id, category, prompt, candidates, best reward."""
    rows = []
    for group in run.groups:
        if category is not None and (group[0].get("category") or "") != category:
            continue
        rewards = [line["reward"] for line in group if line["reward"] is not None]
        text = prompt_text(group[0]).replace("\n", " ")
        best = max(rewards) if rewards else None
        rows.append([group[0]["prompt_id"], group[0].get("category") or "", text[:PREVIEW], len(group), format_reward(best)])
    return rows


def candidate_rows(group: list[dict], run: Run) -> list[list]:
    """The prompt's candidates in reward order: rank, candidate index, reward, role, replies."""
    from rmkit.sampling.candidates import rank_all

    chosen = selection(group, run)
    order = rank_all([line["reward"] for line in group])
    rows = []
    for rank, i in enumerate(order, 1):
        roles = ["selected"] if i == chosen.best else []
        if chosen.pair:
            roles += ["DPO chosen"] if i == chosen.pair[0] else ["DPO rejected"] if i == chosen.pair[1] else []
        rows.append([rank, group[i]["index"], format_reward(group[i]["reward"]), ", ".join(roles), replies(group[i])])
    return rows


def selection_text(group: list[dict], run: Run) -> str:
    """A line on the selected candidate and the DPO pair (or why there is none)."""
    chosen = selection(group, run)
    if chosen.best is None:
        return "No candidate of this prompt is scored: nothing is selected."
    best = group[chosen.best]
    text = f"**Selected:** candidate {best['index']} (reward {format_reward(best['reward'])})."
    if chosen.pair:
        good, bad = group[chosen.pair[0]], group[chosen.pair[1]]
        margin = good["reward"] - bad["reward"]
        return text + f" **DPO pair:** candidate {good['index']} over candidate {bad['index']} (margin {margin:.3f})."
    return text + f" **No DPO pair:** {chosen.no_pair}."


def prompt_markdown(group: list[dict]) -> str:
    """The prompt: its fixed history and the turns answered, as the candidates saw them."""
    from rmkit.sampling.candidates import prompt_messages

    first = group[0]
    shown = prompt_messages(first)
    head = f"### Prompt {first['prompt_id']}" + (f" · {first['category']}" if first.get("category") else "")
    return head + "\n\n" + "\n\n".join(f"**{m['role']}:** {message_text(m)}" for m in shown)


def summary_text(run: Run) -> str:
    from rmkit.selection.select import format_summary

    if not run.stats:
        return f"{run.path}: {len(run.groups)} prompts; no stats.json yet (run `rmkit select {run.path}`)"
    return format_summary(run.stats, run.path)


def report_images(run: Run, root: Path) -> list[tuple[object, str]]:
    """The run's report plots as (image, caption); the report is (re)written when older than the
    run, unless ``report/`` leads out of ``root`` (a link): the app writes nothing outside it."""
    from PIL import Image

    from rmkit.reports.run_report import write_report

    page = run.path / "report" / "report.html"
    newest = max(p.stat().st_mtime for p in (run.path / "candidates.jsonl", run.path / "stats.json") if p.exists())
    if not page.exists() or page.stat().st_mtime < newest:
        inside(root, run.path / "report")
        write_report(run.path)
    # Loaded as images rather than paths: Gradio serves files only from folders it was told of.
    return [(Image.open(png).copy(), png.stem.replace("_", " ")) for png in sorted(page.parent.glob("*.png"))]
