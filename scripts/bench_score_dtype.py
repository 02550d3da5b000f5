"""Reward scoring in bfloat16 vs float32: how far the rewards move, which picks flip, what it saves.

Scores every candidate of a sampling run (its final conversation, as ``rmkit score`` does:
the reward model's own tokenizer and template, ``score.max_length``) with the reward model
loaded in float32 and in bfloat16, each through rmkit's TransformersScorer, interleaved over
``--rounds`` (each round scores everything with both; the rewards of a dtype are the same
every round, only the time varies). Reports the reward differences beside the gaps that
decide a pick (each prompt's best minus second best, in float32), the best-of-N picks that
differ for N = the run's n and N = 2 (its first two candidates), and what the bfloat16 picks
lose in float32 reward.

    rmkit train recipes/demo.yaml && rmkit sample-and-score recipes/demo.yaml   # the demo's RM and run
    python scripts/bench_score_dtype.py --reward-model outputs/demo/reward_model --run runs/demo --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchlib  # noqa: E402  (scripts/ is on the path when this runs as a script)

HEADING = "## Scoring in bfloat16 vs float32"
DTYPES = ("float32", "bfloat16")


def groups_of(run: Path) -> list[list[dict]]:
    """The run's candidates, a list per prompt in index order."""
    from rmkit.sampling.runs import RunFolder

    return [sorted(group, key=lambda line: line["index"]) for group in RunFolder(run).groups()]


def score_all(args, conversations: list, rounds: int) -> tuple[dict[str, list[float | None]], dict[str, list[float]]]:
    """Rewards per dtype, and each round's scoring seconds per dtype (model loads not counted)."""
    from rmkit.config.sections import ScoreConfig
    from rmkit.scoring.reward_models import TransformersScorer

    scorers = {
        dtype: TransformersScorer(ScoreConfig(reward_model=args.reward_model, dtype=dtype, max_length=args.max_length,
                                              batch_size=args.batch_size, chat_template=args.chat_template))
        for dtype in DTYPES
    }  # fmt: skip
    rewards, seconds = {}, {dtype: [] for dtype in DTYPES}
    for round_ in range(rounds):
        for dtype, scorer in scorers.items():
            began = time.perf_counter()
            values = scorer(conversations)
            seconds[dtype].append(time.perf_counter() - began)
            if rewards.setdefault(dtype, values) != values:
                raise SystemExit(f"{dtype} scored differently in round {round_ + 1}: not deterministic")
            print(f"round {round_ + 1}: {dtype} {seconds[dtype][-1]:.1f}s (load {benchlib.load_average()})", file=sys.stderr)
    return rewards, seconds


def compare(groups: list[list[dict]], rewards: dict[str, list[float | None]]) -> dict:
    """Differences, decisive gaps, pick flips and the float32 reward the bfloat16 picks lose."""
    from rmkit.selection.select import best_index

    exact, low = iter(rewards["float32"]), iter(rewards["bfloat16"])
    per_prompt = [([next(exact) for _ in group], [next(low) for _ in group]) for group in groups]
    pairs = [(e, b) for es, bs in per_prompt for e, b in zip(es, bs) if e is not None and b is not None]
    differences = [abs(b - e) for e, b in pairs]
    result = {
        "prompts": len(groups), "candidates": len(pairs), "n": len(groups[0]),
        "difference_mean": statistics.fmean(differences), "difference_median": statistics.median(differences),
        "difference_max": max(differences), "reward_std_float32": statistics.pstdev(e for e, _ in pairs),
    }  # fmt: skip
    for n in sorted({len(groups[0]), 2}):
        gaps, flips, lost = [], 0, []
        for es, bs in per_prompt:
            es, bs = es[:n], bs[:n]
            if any(v is None for v in es + bs):
                continue
            ranked = sorted(es, reverse=True)
            gaps.append(ranked[0] - ranked[1])
            pick_exact, pick_low = best_index(es), best_index(bs)
            flips += pick_exact != pick_low
            lost.append(es[pick_exact] - es[pick_low])
        result[f"best_of_{n}"] = {
            "prompts": len(gaps), "flips": flips, "decisive_gap_median": statistics.median(gaps),
            "gaps_below_max_difference": sum(gap < result["difference_max"] for gap in gaps),
            "float32_reward_lost_mean": statistics.fmean(lost), "float32_reward_lost_max": max(lost),
        }  # fmt: skip
    return result


def markdown(args, result: dict, seconds: dict[str, list[float]], loads: tuple[str, str]) -> str:
    rows = [
        f"| best of {key.split('_')[-1]} | {r['prompts']} | {r['decisive_gap_median']:.3f} | {r['gaps_below_max_difference']} "
        f"| **{r['flips']}** | {r['float32_reward_lost_mean']:.4f} | {r['float32_reward_lost_max']:.3f} |"
        for key, r in result.items() if key.startswith("best_of_")
    ]  # fmt: skip
    speed = {dtype: benchlib.median(values) for dtype, values in seconds.items()}
    return "\n".join(
        [
            HEADING,
            "",
            *benchlib.header("python scripts/bench_score_dtype.py " + " ".join(sys.argv[1:])),
            "",
            f"Reward model `{args.reward_model}`, the {result['candidates']} candidates of `{args.run}` "
            f"({result['prompts']} prompts x {result['n']}), each scored in its whole conversation at max_length "
            f"{args.max_length}, batch size {args.batch_size}, through rmkit's TransformersScorer in each dtype. "
            f"Load average (1/5/15 min) {loads[0]} before, {loads[1]} after.",
            "",
            f"|reward(bfloat16) - reward(float32)|: mean {result['difference_mean']:.4f}, "
            f"median {result['difference_median']:.4f}, max {result['difference_max']:.4f}; "
            f"the float32 rewards' standard deviation is {result['reward_std_float32']:.3f}.",
            "",
            "| pick | prompts | median gap best - second (float32) | gaps below the max difference | picks that flip "
            "| float32 reward lost by the bf16 pick, mean | max |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"Scoring all {result['candidates']} candidates, seconds over {args.rounds} interleaved rounds (model loads apart): "
            + "; ".join(f"{dtype} {benchlib.spread(values, '.1f')}" for dtype, values in seconds.items())
            + f"; bfloat16 / float32 time {speed['bfloat16'] / speed['float32']:.2f}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-model", default="outputs/demo/reward_model")
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="a sampling run folder (its candidates.jsonl)")
    parser.add_argument("--max-length", type=int, default=1024, help="score.max_length (the demo's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--chat-template", default="chatml", help="score.chat_template, used when the RM's tokenizer has none")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the comparison and the rewards here")
    parser.add_argument("--write", type=Path, help="put the results under their heading in this markdown file")
    args = parser.parse_args()

    groups = groups_of(args.run)
    conversations = [line["messages"] for group in groups for line in group]
    before = benchlib.load_average()
    rewards, seconds = score_all(args, conversations, args.rounds)
    result = compare(groups, rewards)
    section = markdown(args, result, seconds, (before, benchlib.load_average()))
    print(section)
    if args.json:
        args.json.write_text(json.dumps({"result": result, "seconds": seconds, "rewards": rewards}))
    if args.write:
        benchlib.write_section(args.write, HEADING, section)


if __name__ == "__main__":
    main()
