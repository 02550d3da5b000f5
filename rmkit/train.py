"""Train a LoRA (or full) sequence-classification reward model on chosen/rejected pairs.

    accelerate launch -m rmkit.train RECIPE.yaml [section.key=value ...]
    python -m rmkit.train RECIPE.yaml train.max_steps=3      # one process
    rmkit train RECIPE.yaml ...

The training itself is :mod:`rmkit.training.trainer`; this module is its command. A rerun
resumes from the latest checkpoint, and refuses one trained with other result-affecting
settings unless told ``--overwrite``.
"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext

from rmkit.config.recipe import load_recipe
from rmkit.folder_lock import folder_lock
from rmkit.reports.run_report import write_report
from rmkit.training.trainer import train


def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="recipe YAML (see recipes/ and docs/training.md)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="e.g. train.max_steps=3")
    parser.add_argument(
        "--overwrite", action="store_true", help="start over in an output folder that holds an earlier run's checkpoints"
    )


def run(args) -> int:
    recipe = load_recipe(args.recipe, args.overrides)
    main_process = os.environ.get("RANK", "0") == "0"
    # The main process writes the output folder (others only read it): it holds the folder's lock.
    with folder_lock(recipe.train.output_dir, "train") if main_process else nullcontext():
        train(recipe, overwrite=args.overwrite)
        if main_process:
            print(f"report: {write_report(recipe.train.output_dir)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rmkit.train`` (what ``accelerate launch`` runs): ``rmkit train``, through the CLI's error boundary."""
    from rmkit.cli import main as rmkit_main

    return rmkit_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
