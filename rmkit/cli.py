"""The ``rmkit`` command: a table of verbs, each a plain function imported only when it runs.

A verb is a ``run(args) -> int | None`` function and an ``add_arguments(parser)`` function of
one module (by default the module's ``run`` and ``add_arguments``). Heavy libraries (torch,
transformers, vLLM, Ray, Gradio) are imported inside the functions that use them, so
``rmkit --help`` imports none of them (tests/test_layers.py holds the rule).

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
from typing import NamedTuple

from rmkit import logs
from rmkit.errors import user_message


class Verb(NamedTuple):
    module: str
    help: str  # one line, in `rmkit --help`
    run: str = "run"  # the module's function that runs the verb
    add_arguments: str = "add_arguments"  # the module's function that declares its arguments


SAMPLING = "rmkit.sampling.verbs"
VERBS: dict[str, Verb] = {
    "train": Verb("rmkit.train", "train a reward model (same as `accelerate launch -m rmkit.train`)"),
    "leaderboard": Verb("rmkit.evaluation.leaderboard", "win rates against a reference model, judged by a reward model"),
    "report": Verb("rmkit.reports.run_report", "plots and an HTML page for a sampling or training run folder"),
    "models": Verb("rmkit.models.builtin", "list the built-in models, or build the default one now"),
    "eval": Verb("rmkit.evaluation.evaluate", "pairwise accuracy of a reward model on preference data, per subset"),
    "sample-and-score": Verb(
        SAMPLING,
        "best-of-N: sample N candidates per prompt, score them, select",
        "run_sample_and_score",
        "add_sampling_arguments",
    ),
    "sample": Verb(SAMPLING, "sample N candidates per prompt into a run folder", "run_sample", "add_sampling_arguments"),
    "score": Verb(SAMPLING, "score or re-score a run folder's candidates with a reward model", "run_score", "add_run_arguments"),
    "select": Verb(
        SAMPLING, "SFT data, DPO pairs, exports and stats from a scored run folder", "run_select", "add_run_arguments"
    ),
    "merge": Verb(SAMPLING, "join the run folders of a --shard i/n split", "run_merge", "add_merge_arguments"),
    "iterate": Verb(
        "rmkit.training.iterate", "rounds of sample, score, select and sft, each round sampling with the last policy"
    ),
    "compare": Verb(
        "rmkit.evaluation.compare", "policies on the same held-out prompts: mean score with intervals, paired differences"
    ),
    "sft": Verb("rmkit.training.sft", "fine-tune the policy on a run's sft.jsonl (TRL SFTTrainer, LoRA or full), merged"),
    "chat": Verb("rmkit.apps.chat", "chat in the terminal; with a reward model each reply is the best of N"),
    "ui": Verb("rmkit.apps.ui", "web app: best-of-N chat and a viewer for sample-and-score runs"),
    "serve": Verb(
        "rmkit.apps.serve.verb", "HTTP reward service of a recipe's scorers: OpenRLHF /get_reward, vLLM-style /classify, /score"
    ),
    "config": Verb("rmkit.config.command_line", "show a recipe's settings (or the defaults), each with its help"),
}


# What to add to a bad-record or out-of-memory message, by verb: the setting to change.
SAMPLING_HINTS = {
    "record": "sample.on_error=skip skips and counts such records",
    "memory": "sample.chunk_size, sample.max_model_len or score.batch_size",
}
HINTS: dict[str, dict[str, str]] = {
    "train": {
        "record": "data.on_error=skip skips and counts such records",
        "memory": "train.per_device_batch_size or data.max_length",
    },
    "eval": {"record": "--on-error skip skips and counts such records", "memory": "--batch-size or --max-length"},
    "sample-and-score": SAMPLING_HINTS,
    "sample": SAMPLING_HINTS,
    "score": {"memory": "score.batch_size or score.max_length"},
    "sft": {"memory": "sft.per_device_batch_size or sft.max_length"},
    "leaderboard": {"memory": "--batch-size or --max-length"},
    "chat": {"memory": "sample.max_model_len or --n"},
    "ui": {"memory": "sample.max_model_len or --n"},
    "serve": {"memory": "score.batch_size or score.max_length"},
}


def add_global_flags(parser: argparse.ArgumentParser, default=False) -> None:
    """``--debug`` and ``-v``, before the verb or after it (a verb's parser passes ``argparse.SUPPRESS``)."""
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show the traceback of errors too (or RMKIT_DEBUG=1)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default,
        help="show the engines' logs (vLLM, transformers, ...) on the screen too; they always go to rmkit.log",
    )  # fmt: skip


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser (the verbs' too), whose usage errors (an unknown option, a flag out of
    range) are one line like every other error, with exit code 2."""

    def error(self, message: str):
        self.exit(2, f"rmkit: error: {one_line(message)} (`{self.prog} --help` lists the arguments)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="rmkit", description="Train reward models and use them for best-of-N sampling.")
    add_global_flags(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, verb in VERBS.items():
        module = importlib.import_module(verb.module)
        run = getattr(module, verb.run)
        doc = module.__doc__ if verb.run == "run" else run.__doc__  # a module of several verbs: each one's own
        sub = verbs.add_parser(name, help=verb.help, description=(doc or verb.help).strip().split("\n\n")[0])
        getattr(module, verb.add_arguments)(sub)
        add_global_flags(sub, default=argparse.SUPPRESS)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; user errors become one line on stderr and exit code 2."""
    args = parse_args(argv)
    debug = args.debug or os.environ.get("RMKIT_DEBUG", "") not in ("", "0")
    logs.setup(args.verb, args.verbose)
    try:
        return args.run(args) or 0
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The verb's arguments. argparse reads positionals in one run, so ``section.key=value``
    overrides typed after an option (``rmkit eval RUN --heldout score.max_length=512``) come back
    unparsed: they join the verb's overrides."""
    from rmkit.config.command_line import OVERRIDE

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not isinstance(getattr(args, "overrides", None), list) or not all(OVERRIDE.match(e) for e in extra):
            parser.parse_args(argv)  # argparse's own error for what it does not know
        args.overrides += extra
    return args


def one_line(message: str, longest: int = 2000) -> str:
    """A message's lines joined by "; " (by a space after a colon): one line on the terminal, cut
    in the middle past ``longest`` characters (a huge value quoted from the input)."""
    text = ""
    for line in filter(None, (part.strip() for part in message.splitlines())):
        text += (" " if text.endswith(":") else "; " if text else "") + line
    if len(text) > longest:
        cut = len(text) - longest
        text = f"{text[: longest - 500]} [... {cut:,} characters left out ...] {text[-500:]}"
    return text


if __name__ == "__main__":
    sys.exit(main())
