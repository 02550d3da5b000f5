"""``rmkit compare RUN RUN [...]``: policies judged on the same held-out prompts, paired by prompt.

Each RUN is a scored sampling run of one policy on the same prompts (``rmkit sample-and-score``
with ``sample.prompts=HELDOUT`` and ``sample.n=M``, M replies per prompt at the sampling
temperature). The value of a reply is one scorer's (``--scorer gold``: say a verifier that did
not select anything) or the weighted reward. Per policy: the mean over prompts of each prompt's
mean value, with a 95% bootstrap interval over prompts, and the mean reply length; per
reference policy (the first RUN unless ``--reference``): the paired difference over the prompts
both answered, with its interval. Rows with no value (a failed check, an unscored reply) are
left out and counted.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from rmkit.errors import ConfigError, MissingPath
from rmkit.selection.best_of_n import bootstrap_interval


def policy_values(path: Path, scorer: str | None) -> tuple[dict[str, float], dict[str, float], int]:
    """Per prompt id: the mean value of its replies and their mean length (tokens over all turns);
    and how many replies had no value."""
    from rmkit.sampling.runs import RunFolder

    run = RunFolder(path)
    if not run.exists():
        raise MissingPath(f"{path} is not a sampling run folder (no run.json): run `rmkit sample-and-score` first")
    values, lengths, missing = {}, {}, 0
    for group in run.groups():
        scored = [(line["reward"] if scorer is None else line.get("scores", {}).get(scorer), line) for line in group]
        present = [(value, line) for value, line in scored if value is not None]
        missing += len(scored) - len(present)
        if present:
            prompt = group[0]["prompt_id"]
            values[prompt] = statistics.fmean(value for value, _ in present)
            lengths[prompt] = statistics.fmean(sum(turn["tokens"] for turn in line["turns"]) for _, line in present)
    if not values:
        named = f"scorer {scorer!r}" if scorer else "a reward"
        raise ConfigError(f"{path}: no reply has {named}; --scorer names one of the run's score.scorers")
    return values, lengths, missing


def interval(values: list[float]) -> dict:
    low, high = bootstrap_interval(values)
    return {"mean": statistics.fmean(values), "low": low, "high": high, "prompts": len(values)}


def compare(paths: list[Path], scorer: str | None, references: list[Path]) -> dict:
    """The comparison of :mod:`rmkit.evaluation.compare`'s doc as a dict: ``policies`` and ``differences``."""
    runs = {str(path): policy_values(path, scorer) for path in paths}
    shared = sorted(set.intersection(*(set(values) for values, _, _ in runs.values())))
    if not shared:
        raise ConfigError("the runs share no prompt: evaluate every policy on the same sample.prompts")
    policies = {
        name: {
            **interval([values[p] for p in shared]),
            "mean_reply_tokens": statistics.fmean(lengths[p] for p in shared),
            "replies_without_value": missing,
            "prompts_left_out": len(values) - len(shared),
        }
        for name, (values, lengths, missing) in runs.items()
    }
    differences = []
    for reference in map(str, references):
        for name, (values, _, _) in runs.items():
            if name != reference:
                diff = interval([values[p] - runs[reference][0][p] for p in shared])
                differences.append({"policy": name, "reference": reference, **diff})
    return {"scorer": scorer or "reward", "prompts": len(shared), "policies": policies, "differences": differences}


def format_comparison(result: dict) -> str:
    def ci(row: dict, sign: str = "") -> str:
        return f"{row['mean']:{sign}.3f} [{row['low']:{sign}.3f}, {row['high']:{sign}.3f}]"

    width = max(len(name) for name in result["policies"]) + 2
    lines = [
        f"{result['scorer']} per prompt (mean of its replies), {result['prompts']} prompts, 95% bootstrap intervals over prompts",
        f"{'policy':<{width}}{'mean [95% interval]':<28}reply tokens",
    ]
    lines += [f"{name:<{width}}{ci(row):<28}{row['mean_reply_tokens']:.1f}" for name, row in result["policies"].items()]
    for row in result["differences"]:
        lines.append(f"{row['policy']} - {row['reference']} (paired): {ci(row, '+')}")
    for name, row in result["policies"].items():
        if row["replies_without_value"] or row["prompts_left_out"]:
            lines.append(
                f"{name}: {row['replies_without_value']} replies without a value, "
                f"{row['prompts_left_out']} prompts not in every run (left out)"
            )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="scored run folders, one per policy, on the same prompts")
    parser.add_argument("--scorer", help="the scorer whose value judges (default: the weighted reward), e.g. a gold verifier")
    parser.add_argument(
        "--reference",
        action="append",
        metavar="RUN",
        help="the differences are against this run (repeatable; default: the first RUN)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")


def run(args: argparse.Namespace) -> int:
    from rmkit.atomic_files import write_json

    paths = [Path(p) for p in args.runs]
    references = [Path(p) for p in args.reference or paths[:1]]
    if unknown := [str(p) for p in references if p not in paths]:
        raise ConfigError(f"--reference {unknown[0]} is not one of the compared runs")
    if len(set(paths)) < 2:
        raise ConfigError("rmkit compare needs two runs or more")
    result = compare(paths, args.scorer, references)
    print(format_comparison(result))
    if args.json:
        write_json(Path(args.json), result)
    return 0
