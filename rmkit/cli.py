"""The ``rmkit`` command: one verb per module, each imported only when it runs.

Each verb's module provides ``add_arguments(parser)`` and ``run(args) -> int | None``;
heavy libraries are imported inside ``run`` so ``rmkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# verb → (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "train": ("rmkit.train", "train a reward model (same as `accelerate launch -m rmkit.train`)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmkit", description="Train reward models and use them for best-of-N sampling.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (module_name, help_text) in VERBS.items():
        module = importlib.import_module(module_name)
        sub = verbs.add_parser(verb, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0])
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.module.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
