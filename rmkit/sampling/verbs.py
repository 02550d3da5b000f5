"""The sampling verbs, plain functions that the ``rmkit`` command's table (rmkit/cli.py) registers:

    rmkit sample-and-score RECIPE [section.key=value ...]   all stages: sample, score, select
    rmkit sample RECIPE_OR_RUN ...    candidates only (per_turn: best scores as it goes)
    rmkit score RUN ...               (re)score the candidates, e.g. score.reward_model=OTHER
    rmkit select RUN ...              SFT data, DPO pairs, exports and stats from the rewards
    rmkit merge OUT SHARD_RUN ...     join the folders of a --shard i/n split

Each reads its arguments, calls the stages (:mod:`rmkit.sampling.pipeline`) and writes the
run's report page: the command layer, above everything it calls. Each holds the run folder's
lock (:mod:`rmkit.folder_lock`) while it writes there: one process per folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rmkit import logs
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import Recipe
from rmkit.errors import ConfigError, MissingPath
from rmkit.folder_lock import folder_lock


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``rmkit score`` and ``rmkit select``: a run folder (or a recipe naming one) and overrides."""
    parser.add_argument("target", metavar="RECIPE_OR_RUN", help="a recipe YAML, or a run folder (its recipe.yaml is used)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="recipe overrides, e.g. sample.n=8 score.reward_model=outputs/rm",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``rmkit sample-and-score`` and ``rmkit sample``: the run arguments, and where and how to write."""
    add_run_arguments(parser)
    parser.add_argument(
        "-o", "--output", help="run folder (default: sample.output_dir, or its shard-I-of-N subfolder with --shard)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the folder's results and start over (needed once result-affecting settings changed)",
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="only every N-th prompt from the I-th (0-based), one shard per machine; join with `rmkit merge`",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with sample.executor=ray: the Ray cluster to use, e.g. auto or HOST:6379 "
        "(default: $RAY_ADDRESS, else a new local Ray)",
    )


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="the merged run folder to create")
    parser.add_argument("shards", nargs="+", help="the shard run folders, all n of them")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it already holds a run")


def run_sample_and_score(args: argparse.Namespace) -> None:
    """Sample N candidates per prompt, score them with a reward model, select the best.

    Rerunning the same command resumes where it stopped.
    """
    from rmkit.sampling.pipeline import sample_and_score
    from rmkit.sampling.runs import parse_shard

    recipe, output = resolve_target(args)
    with folder_lock(output, "sample-and-score"):
        sample_and_score(recipe, output, parse_shard(args.shard), args.overwrite, ray_address=args.ray_address)
        write_report_page(output)


def run_sample(args: argparse.Namespace) -> None:
    """Sample N candidates per prompt into a run folder, without scoring (unless per_turn: best)."""
    from rmkit.sampling.pipeline import sample_only
    from rmkit.sampling.runs import parse_shard

    recipe, output = resolve_target(args)
    with folder_lock(output, "sample"):
        sample_only(recipe, output, parse_shard(args.shard), args.overwrite, args.ray_address)


def run_score(args: argparse.Namespace) -> None:
    """Score (or re-score with another reward model) the candidates of a run folder.

    Nothing is generated again. In a per_turn: best run every turn is re-scored, but the
    replies that were continued stay the ones the sampling reward model chose. The outputs
    of an earlier `rmkit select` (sft.jsonl, pairs.jsonl, exports, stats.json) are marked
    stale until `rmkit select` writes them again.
    """
    from rmkit.sampling.pipeline import existing_run, score_stage, validate

    recipe, path = resolve_target(args)
    validate(recipe, scoring=True)
    with folder_lock(path, "score", create=False):
        run = existing_run(recipe, path, ("sample",))
        score_stage(recipe, run)
    if note := run.stale_note():
        logs.note(note, warning=True)


def run_select(args: argparse.Namespace) -> None:
    """Write SFT data, DPO pairs, exports and stats from a scored run folder."""
    from rmkit.sampling.pipeline import existing_run, select_stage

    recipe, path = resolve_target(args)
    with folder_lock(path, "select", create=False):
        select_stage(recipe, existing_run(recipe, path, ("sample", "score")))
        write_report_page(path)


def run_merge(args: argparse.Namespace) -> None:
    """Join the run folders of a --shard i/n split into one, then select."""
    from rmkit.sampling.pipeline import select_stage
    from rmkit.sampling.runs import merge_runs

    with folder_lock(args.output, "merge"):
        run = merge_runs(args.output, args.shards, args.overwrite)
        logs.log_to(run.path)
        select_stage(load_recipe(run.recipe_path), run)
        write_report_page(run.path)


def resolve_target(args: argparse.Namespace) -> tuple[Recipe, Path]:
    """The recipe (with overrides) and run folder named by RECIPE_OR_RUN and --output."""
    from rmkit.sampling.runs import parse_shard

    target, output = Path(args.target), getattr(args, "output", None)
    if target.is_dir():
        if output:
            raise ConfigError("--output goes with a recipe; a run folder is its own output")
        if not (target / "recipe.yaml").is_file():
            raise MissingPath(f"{target} is not a run folder (no recipe.yaml): give a run folder or a recipe")
        return load_recipe(target / "recipe.yaml", args.overrides), target
    recipe = load_recipe(target, args.overrides)
    shard = parse_shard(getattr(args, "shard", None))
    default = Path(recipe.sample.output_dir) / (f"shard-{shard[0]}-of-{shard[1]}" if shard else "")
    return recipe, Path(output) if output else default


def write_report_page(path: Path) -> None:
    from rmkit.reports.run_report import write_report

    print(f"report: {write_report(path)}")
