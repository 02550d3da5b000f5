"""The ``rmkit`` command: one verb per module, each imported only when it runs.

Each verb's module (or object) provides ``add_arguments(parser)`` and ``run(args) -> int | None``;
heavy libraries are imported inside ``run`` so ``rmkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# verb → (module, or "module:Object" when one module holds several verbs, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "train": ("rmkit.train", "train a reward model (same as `accelerate launch -m rmkit.train`)"),
    "leaderboard": ("rmkit.leaderboard", "win rates against a reference model, judged by a reward model"),
    "report": ("rmkit.report", "plots and an HTML page for a sampling or training run folder"),
    "models": ("rmkit.models", "list the built-in models, or build the default one now"),
    "eval": ("rmkit.evaluate", "pairwise accuracy of a reward model on preference data, per subset"),
    "sample-and-score": ("rmkit.sampling.pipeline:SampleAndScore", "best-of-N: sample N candidates per prompt, score them, select"),
    "sample": ("rmkit.sampling.pipeline:Sample", "sample N candidates per prompt into a run folder"),
    "score": ("rmkit.sampling.pipeline:Score", "score or re-score a run folder's candidates with a reward model"),
    "select": ("rmkit.sampling.pipeline:Select", "SFT data, DPO pairs, exports and stats from a scored run folder"),
    "merge": ("rmkit.sampling.pipeline:Merge", "join the run folders of a --shard i/n split"),
    "chat": ("rmkit.chat", "chat in the terminal; with a reward model each reply is the best of N"),
    "ui": ("rmkit.ui", "web app: best-of-N chat and a viewer for sample-and-score runs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmkit", description="Train reward models and use them for best-of-N sampling.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (target, help_text) in VERBS.items():
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        module = getattr(module, attribute) if attribute else module
        sub = verbs.add_parser(verb, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0])
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.module.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
