"""``rmkit iterate RECIPE [--rounds K] [-o DIR] [section.key=value ...]``: rejection-sampling
fine-tuning in rounds (RAFT, ReST-EM).

Round k samples the recipe's prompts with the policy of round k-1 (round 1: ``sample.policy``),
scores and selects them into ``DIR/round-k/run`` (a run folder like any other), and fine-tunes
``DIR/round-k/policy``: ``iterate.mode: rest_em`` fits the base policy to everything kept in
rounds 1..k (``DIR/round-k/sft_data.jsonl``), ``raft`` continues from round k-1's policy on
round k's data. Each stage is the verb a user would run (``rmkit sample-and-score``, ``rmkit
sft``), in its own process. A rerun resumes: a sampling run picks up where it stopped, and a round whose
policy is written (``sft_summary.json``, the last file ``rmkit sft`` writes) is not trained again.
``DIR/iterate.json`` and the printed table show each round's rewards and the SFT loss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

from rmkit.atomic_files import write_json, write_jsonl
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import Recipe
from rmkit.errors import ConfigError
from rmkit.folder_lock import folder_lock
from rmkit.processes import die_with_parent


def round_overrides(recipe: Recipe, out: Path, k: int) -> list[str]:
    """Round ``k``'s settings: the policy it samples with, and what its SFT starts from, reads and writes."""
    previous = str(out / f"round-{k - 1}" / "policy") if k > 1 else recipe.sample.policy
    folder = out / f"round-{k}"
    if recipe.iterate.mode == "raft":
        start, data = previous, folder / "run" / "sft.jsonl"
    else:
        start, data = recipe.sft.policy or recipe.sample.policy, folder / "sft_data.jsonl"
    return [f"sample.policy={previous}", f"sft.policy={start}", f"sft.data={data}", f"sft.output_dir={folder / 'policy'}"]


def trained(recipe: Recipe) -> bool:
    """The round's policy is written, from the same data and starting policy (else refused)."""
    from rmkit.models.builtin import resolve_model

    summary = Path(recipe.sft.output_dir) / "sft_summary.json"
    if not summary.exists():
        return False
    done = json.loads(summary.read_text())
    if done["data"] != recipe.sft.data or done["policy"] != resolve_model(recipe.sft.policy):
        raise ConfigError(
            f"{recipe.sft.output_dir} was fine-tuned from {done['policy']} on {done['data']}, "
            "not as this recipe says; use another -o or remove it"
        )
    return True


def rmkit(*args: str) -> None:
    """One stage as its own ``rmkit`` process (the verb's own lock, resume and engines), which
    dies with this one: a killed ``rmkit iterate`` leaves no stage running on."""
    command = [sys.executable, "-m", "rmkit.cli", *map(str, args)]
    print("rmkit: + rmkit " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    if subprocess.run(command, preexec_fn=partial(die_with_parent, os.getpid())).returncode:
        raise ConfigError(f"round stage `rmkit {args[0]}` failed (its error is above); rerun to resume")


def iterate(recipe_path: str, overrides: list[str], out: Path) -> list[dict]:
    from rmkit.training.sft import read_sft

    recipe = load_recipe(recipe_path, overrides)
    rows = []
    for k in range(1, recipe.iterate.rounds + 1):
        mine = [*overrides, *round_overrides(recipe, out, k)]
        this, run = load_recipe(recipe_path, mine), out / f"round-{k}" / "run"
        print(f"rmkit: round {k}/{recipe.iterate.rounds}: sampling with {this.sample.policy}", file=sys.stderr, flush=True)
        rmkit("sample-and-score", recipe_path, "-o", run, *mine)
        if recipe.iterate.mode == "rest_em":  # everything kept in rounds 1..k
            kept = [{"messages": m} for j in range(1, k + 1) for m in read_sft(out / f"round-{j}" / "run" / "sft.jsonl")]
            write_jsonl(Path(this.sft.data), kept)
        if not trained(this):
            rmkit("sft", recipe_path, *mine)
        stats = json.loads((run / "stats.json").read_text())
        summary = json.loads((Path(this.sft.output_dir) / "sft_summary.json").read_text())
        rows.append(
            {
                "round": k,
                "sampled_with": this.sample.policy,
                "prompts": stats["prompts"],
                "mean_reward_all": stats["mean_reward_all"],
                "mean_reward_random": stats["mean_reward_random"],
                "mean_reward_selected": stats["mean_reward_selected"],
                "mean_tokens_all": stats["mean_tokens_all"],
                "sft_conversations": summary["conversations"],
                "sft_steps": summary["steps"],
                "sft_loss": summary["train_loss"],
                "policy": this.sft.output_dir,
            }
        )
        write_json(out / "iterate.json", {"mode": recipe.iterate.mode, "rounds": rows})
    return rows


def format_rounds(rows: list[dict]) -> str:
    def num(value):
        return "-" if value is None else f"{value:+.3f}"

    lines = ["round  mean reward: all   random  selected   reply tokens   sft conversations  steps    loss"]
    lines += [
        f"{r['round']:>5}  {num(r['mean_reward_all']):>16} {num(r['mean_reward_random']):>8} {num(r['mean_reward_selected']):>9}"
        f" {r['mean_tokens_all']:>14.1f} {r['sft_conversations']:>19} {r['sft_steps']:>6} {r['sft_loss']:>7.3f}"
        for r in rows
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the recipe: sample, score, select and sft sections (and iterate)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides, e.g. iterate.mode=raft")
    parser.add_argument("--rounds", type=int, help="number of rounds (default: iterate.rounds)")
    parser.add_argument("-o", "--output", help="the parent folder of the rounds (default: iterate.output_dir)")


def run(args: argparse.Namespace) -> int:
    overrides = [*args.overrides, *([f"iterate.rounds={args.rounds}"] if args.rounds is not None else [])]
    out = Path(args.output or load_recipe(args.recipe, overrides).iterate.output_dir)
    with folder_lock(out, "iterate"):
        rows = iterate(args.recipe, overrides, out)
    print(format_rounds(rows))
    print(f"rmkit: wrote {out / 'iterate.json'}; the last policy is {rows[-1]['policy']}")
    return 0
