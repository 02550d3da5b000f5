"""Reading a recipe: one YAML file (or the defaults) and ``section.key=value`` overrides, checked
against the section dataclasses (:mod:`rmkit.config.sections`): unknown keys and wrong types
fail with a message that names the key and lists the valid ones."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from rmkit.config.sections import Recipe
from rmkit.errors import ConfigError, decode_utf8

# A float key reads numeric text as the number: YAML 1.1 reads 3e-4 as a string (it wants
# 3.0e-4), in a recipe file and an override alike, and users write it the short way.
# The words YAML 1.1 reads as booleans, for keys that take one of them as a string (mixed_precision: no).
YAML_BOOL_WORDS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Keys that were renamed, and what to write now: a recipe of an older rmkit stops with this, not with "unknown key".
RENAMED = {"sft.bf16": "write sft.mixed_precision: bf16 (for bf16: true) or no (for false), as train.mixed_precision"}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow int→float and str→Path."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass  # try the next type; none fits: the error below names the union
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads no/off/yes/on as booleans: give back the word the key takes
            value = next((word for word in YAML_BOOL_WORDS[value] if word in args), value)
        if value in args:
            return value
        raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {k: _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()} if args else value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value)
    if tp is Path and isinstance(value, str):
        return Path(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'recipe'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    for key in unknown:
        if f"{prefix}.{key}" in RENAMED:
            raise ConfigError(f"{prefix}.{key} is renamed: {RENAMED[f'{prefix}.{key}']}")
    if unknown:
        where = f"section {prefix!r}" if prefix else "the recipe"
        raise ConfigError(f"unknown key {prefix + '.' if prefix else ''}{unknown[0]} in {where}; valid keys: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in values.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.max_steps=30`` → (["train", "max_steps"], 30); values are YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value of {key.strip()} is not valid YAML ({yaml_problem(err)})") from None
    return key.strip().split("."), value


def yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong, from a YAML error: its problem, else its first line (a reader error)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "constructor for the tag" in problem:  # safe_load builds no Python objects
        problem += "; a recipe is plain YAML, without !!python or other tags"
    return problem


def read_recipe_file(path: str | Path) -> dict:
    """A recipe file's raw sections; :class:`ConfigError` names the file (and line) when it is not a
    UTF-8 YAML mapping."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recipe {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"recipe {path} is a folder: give the recipe's YAML file")
    text = decode_utf8(path.read_bytes(), lambda line, reason: ConfigError(f"recipe {path}, line {line}: {reason}"))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark, context = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if isinstance(err, yaml.reader.ReaderError):  # a character YAML refuses, found by its position
            where = f", line {text.count(chr(10), 0, err.position) + 1}"
        opened = f" ({err.context} at line {context.line + 1}, column {context.column + 1})" if context and err.context else ""
        raise ConfigError(f"recipe {path}{where}: not valid YAML: {yaml_problem(err)}{opened}") from None
    if not isinstance(raw, dict | None):
        raise ConfigError(f"recipe {path}: expected a mapping of sections (train:, sample:, ...), got a {type(raw).__name__}")
    return raw or {}


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return raw


def load_recipe(path: str | Path | None, overrides: list[str] = (), cls: type = Recipe) -> Any:
    """Load a recipe YAML (or just defaults when ``path`` is None) and apply overrides."""
    raw = read_recipe_file(path) if path is not None else {}
    raw = apply_overrides(raw, list(overrides))
    try:
        return _build(cls, raw, "")
    except ConfigError as err:
        raise ConfigError(f"{path or 'recipe'}: {err}") from None


def dump_recipe(recipe: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
