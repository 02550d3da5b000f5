"""The recipe on the command line: ``--recipe``, ``section.key=value`` overrides, and flags
built from the config dataclasses, so each default and its help live once, in
:mod:`rmkit.config.sections`.

    rmkit config show [RECIPE] [section.key=value ...]   every setting, with its help

A verb's flag (``--batch-size``) is a shorthand for its recipe key (``score.batch_size``): it
defaults to the recipe's value, which defaults to the dataclass's, and wins over both.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from rmkit.config.recipe import load_recipe, read_recipe_file
from rmkit.config.sections import SECTIONS, Recipe
from rmkit.errors import ConfigError

OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+=")


def field_help(cls: type) -> dict[str, str]:
    """A config dataclass's help for each key (:func:`rmkit.config.fields.setting`)."""
    return {key.name: key.metadata["help"] for key in dataclasses.fields(cls)}


def add_recipe_arguments(
    parser: argparse.ArgumentParser, keys: tuple[str, ...] = (), overrides: bool = True, defaults: dict[str, Any] | None = None
) -> None:
    """``--recipe``, a ``--flag`` per recipe key of ``keys`` (``score.batch_size`` → ``--batch-size``),
    typed and documented from its dataclass, and (``overrides``) positional ``section.key=value``.

    ``defaults`` are the verb's own defaults of keys where the dataclass's does not suit it
    (``rmkit eval`` reads a dataset's test split, training its train split); they apply where
    neither a flag, an override nor the recipe file sets the key (:func:`recipe_from_args`).
    """
    parser.add_argument("--recipe", help="a recipe YAML; its settings are the defaults here (see `rmkit config show`)")
    parser.set_defaults(verb_defaults=defaults or {})
    for key in keys:
        section, name = key.split(".")
        cls = SECTIONS[section]
        default = (defaults or {}).get(key, getattr(cls(), name))
        text = field_help(cls)[name]
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=key,
            default=None,
            metavar=name.upper(),
            help=f"{text}; recipe key {key} (default: {'unset' if default in ('', None) else default})",
            **_argparse_type(typing.get_type_hints(cls)[name], key, cls),
        )
    if overrides:
        parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides, e.g. score.batch_size=4")
    else:  # the verb's positionals hold them (split_overrides); those typed after an option land here
        parser.set_defaults(overrides=[])


def _argparse_type(annotation, key: str, cls: type) -> dict:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        return {"choices": list(typing.get_args(annotation))}
    if annotation in (int, float, str):
        return {"type": _checked(annotation, cls, key.split(".")[1])}
    raise TypeError(f"{key}: no command-line flag for a {annotation} setting; use the override {key}=VALUE")


def _checked(convert: type, cls: type, name: str):
    """argparse's type for a flag: the text converted, then checked as its recipe key is (the
    config dataclass's ranges), so ``--batch-size 0`` fails as ``score.batch_size=0`` does."""

    def parse(text: str):
        value = convert(text)
        try:
            cls(**{name: value})
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    parse.__name__ = convert.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


def positive_int(text: str) -> int:
    """argparse's type for a count: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def split_overrides(values: list[str]) -> tuple[list[str], list[str]]:
    """``(other positionals, section.key=value overrides)`` of a verb's positional arguments."""
    overrides = [v for v in values if OVERRIDE.match(v) and not Path(v).exists()]
    return [v for v in values if v not in overrides], overrides


def recipe_from_args(args: argparse.Namespace, keys: tuple[str, ...] = (), overrides: list[str] = ()) -> Recipe:
    """The recipe ``--recipe`` names (or the defaults), with the verb's own defaults of keys nobody
    set (:func:`add_recipe_arguments`), the overrides (``overrides``, then ``args.overrides``),
    then the flags given, applied."""
    own = [
        f"{key}={json.dumps(value)}"
        for key, value in getattr(args, "verb_defaults", {}).items()
        if not is_set(args, key, overrides)
    ]
    flags = [f"{key}={json.dumps(getattr(args, key))}" for key in keys if getattr(args, key, None) is not None]
    return load_recipe(args.recipe, [*own, *overrides, *args.overrides, *flags])


def is_set(args: argparse.Namespace, key: str, overrides: list[str]) -> bool:
    """Whether the user gave ``key`` (``score.max_length``): by its flag, an override or the ``--recipe`` file."""
    section, name = key.split(".")
    if getattr(args, key, None) is not None or any(o.split("=", 1)[0].strip() == key for o in [*overrides, *args.overrides]):
        return True
    return bool(args.recipe) and name in (read_recipe_file(args.recipe).get(section) or {})


# ----------------------------------------------------------------------------- rmkit config show


def show(recipe: Recipe) -> str:
    """The recipe as YAML, every key with its help as a trailing comment."""
    import yaml

    lines = []
    for section, cls in SECTIONS.items():
        docs = field_help(cls)
        lines.append(f"{section}:  # {inspect.getdoc(cls).splitlines()[0].replace('``', '`')}")
        for name, value in dataclasses.asdict(getattr(recipe, section)).items():
            text = yaml.safe_dump({name: value}, default_flow_style=True, width=1000).strip()[1:-1]
            lines.append(f"  {text}  # {docs[name]}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["show"], help="show: print the recipe's settings, each with its help")
    parser.add_argument("recipe", nargs="?", help="a recipe YAML (default: the built-in defaults)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")


def run(args: argparse.Namespace) -> int:
    positionals, overrides = split_overrides([args.recipe, *args.overrides] if args.recipe else args.overrides)
    if len(positionals) > 1:
        raise ConfigError(f"one recipe at most, got {', '.join(positionals)}")
    print(show(load_recipe(positionals[0] if positionals else None, overrides)))
    return 0
