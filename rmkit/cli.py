"""The ``rmkit`` command: one verb per module, each imported only when it runs.

Each verb's module (or object) provides ``add_arguments(parser)`` and ``run(args) -> int | None``;
heavy libraries are imported inside ``run`` so ``rmkit --help`` stays fast.

:func:`main` is the one error boundary of every verb (``python -m rmkit.train``, which
``accelerate launch`` runs, comes through it too): a user error (:mod:`rmkit.errors`)
prints one line ``rmkit: error: ...`` and exits 2; any other exception is a bug and keeps
its traceback. ``--debug`` (or ``RMKIT_DEBUG=1``) shows the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rmkit import logs
from rmkit.errors import user_message

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
    "config": ("rmkit.config_cli", "show a recipe's settings (or the defaults), each with its help"),
}


# What to add to a bad-record or out-of-memory message, by verb: the setting to change.
SAMPLING_HINTS = {
    "record": "sample.on_error=skip skips and counts such records",
    "memory": "sample.chunk_size, sample.max_model_len or score.batch_size",
}
HINTS: dict[str, dict[str, str]] = {
    "train": {"record": "data.on_error=skip skips and counts such records", "memory": "train.per_device_batch_size or data.max_length"},
    "eval": {"record": "--on-error skip skips and counts such records", "memory": "--batch-size or --max-length"},
    "sample-and-score": SAMPLING_HINTS,
    "sample": SAMPLING_HINTS,
    "score": {"memory": "score.batch_size or score.max_length"},
    "leaderboard": {"memory": "--batch-size or --max-length"},
    "chat": {"memory": "sample.max_model_len or --n"},
    "ui": {"memory": "sample.max_model_len or --n"},
}


def add_global_flags(parser: argparse.ArgumentParser, default=False) -> None:
    """``--debug`` and ``-v``, before the verb or after it (a verb's parser passes ``argparse.SUPPRESS``)."""
    parser.add_argument("--debug", action="store_true", default=default, help="show the traceback of errors too (or RMKIT_DEBUG=1)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default,
        help="show the engines' logs (vLLM, transformers, ...) on the screen too; they always go to rmkit.log",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmkit", description="Train reward models and use them for best-of-N sampling.")
    add_global_flags(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (target, help_text) in VERBS.items():
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        module = getattr(module, attribute) if attribute else module
        sub = verbs.add_parser(verb, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0])
        module.add_arguments(sub)
        add_global_flags(sub, default=argparse.SUPPRESS)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; user errors become one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("RMKIT_DEBUG", "") not in ("", "0")
    logs.setup(args.verb, args.verbose)
    try:
        return args.module.run(args) or 0
    except KeyboardInterrupt:
        if debug:
            raise
        print("\nrmkit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        message = None if debug else user_message(err, HINTS.get(args.verb))
        if message is None:
            raise
        print(f"rmkit: error: {one_line(message)}", file=sys.stderr)
        return 2
    finally:
        logs.close()


def one_line(message: str) -> str:
    """A message's lines joined by "; " (by a space after a colon): one line on the terminal."""
    text = ""
    for line in filter(None, (part.strip() for part in message.splitlines())):
        text += (" " if text.endswith(":") else "; " if text else "") + line
    return text


if __name__ == "__main__":
    sys.exit(main())
