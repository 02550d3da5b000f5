"""How often a reward model prefers the chosen reply: a RewardBench-style table.

    rmkit eval outputs/reward_model ../shared/data/hh_rlhf [--json] [--max-pairs 1000]
    rmkit eval outputs/reward_model --heldout     # the pairs that training run held out, at its max_length

Per subset (``PreferencePair.subset``: the file stem, or its folder for split-named files)
and overall: pairwise accuracy (r_chosen > r_rejected; a tie counts half), the mean margin
r_chosen - r_rejected, and the reward spread (standard deviation of every reward, chosen
and rejected: near zero means the model barely tells replies apart). Overall is pooled
over all pairs, i.e. the count-weighted mean of the subsets. Beside the model, two
baselines: the longer reply (in characters) wins, and chance (0.5).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time

from pathlib import Path

from rmkit.config import DataConfig
from rmkit.conversation import PreferencePair, reply_text
from rmkit.errors import ConfigError, DataError, MissingPath
from rmkit.data.formats import PAIR_FORMATS, load_pair_split, load_pairs
from rmkit.data.report import DataReport

CHANCE = 0.5
MAX_LENGTH = 1024  # tokens per conversation, unless the training run says (--heldout)
COLUMNS = [  # (key, title, format)
    ("pairs", "pairs", "{:d}"),
    ("accuracy", "accuracy", "{:.3f}"),
    ("length_baseline", "longer wins", "{:.3f}"),
    ("chance", "chance", "{:.2f}"),
    ("mean_margin", "mean margin", "{:+.3f}"),
    ("reward_spread", "reward std", "{:.3f}"),
]


# ----------------------------------------------------------------------------- metrics


def group_metrics(chosen: list[float], rejected: list[float]) -> dict:
    """Accuracy (ties half), mean margin and reward spread of one group of pairs."""
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return {
        "pairs": len(chosen),
        "accuracy": wins / len(chosen),
        "mean_margin": statistics.fmean(c - r for c, r in zip(chosen, rejected)),
        "reward_spread": statistics.pstdev([*chosen, *rejected]),
    }


def pairwise_metrics(chosen_rewards: list[float], rejected_rewards: list[float], subsets: list[str]) -> dict:
    """``{"overall": metrics, "subsets": {name: metrics}}``, subsets in order of first appearance."""
    if not chosen_rewards or not len(chosen_rewards) == len(rejected_rewards) == len(subsets):
        raise ValueError("pairwise_metrics needs equally long, non-empty chosen, rejected and subset lists")
    members: dict[str, list[int]] = {}
    for i, subset in enumerate(subsets):
        members.setdefault(subset, []).append(i)
    return {
        "overall": group_metrics(chosen_rewards, rejected_rewards),
        "subsets": {
            name: group_metrics([chosen_rewards[i] for i in idx], [rejected_rewards[i] for i in idx])
            for name, idx in members.items()
        },
    }


def length_baseline(pairs: list[PreferencePair]) -> dict:
    """Accuracy of "the longer reply wins" (ties half): ``{"overall": acc, "subsets": {name: acc}}``."""
    metrics = pairwise_metrics([len(reply_text(p.chosen)) for p in pairs], [len(reply_text(p.rejected)) for p in pairs], [p.subset for p in pairs])
    return {
        "overall": metrics["overall"]["accuracy"],
        "subsets": {name: m["accuracy"] for name, m in metrics["subsets"].items()},
    }


def results(pairs: list[PreferencePair], chosen: list[float], rejected: list[float]) -> dict:
    """The model's metrics with both baselines beside them, overall and per subset."""
    model = pairwise_metrics(chosen, rejected, [p.subset for p in pairs])
    longer = length_baseline(pairs)
    overall = {**model["overall"], "length_baseline": longer["overall"], "chance": CHANCE}
    subsets = {name: {**m, "length_baseline": longer["subsets"][name], "chance": CHANCE} for name, m in model["subsets"].items()}
    return {"overall": overall, "subsets": subsets}


def format_table(result: dict) -> str:
    """The subsets, then the overall row, as an aligned text table."""

    def cells(name: str, metrics: dict) -> list[str]:
        return [name, *(fmt.format(metrics[key]) for key, _, fmt in COLUMNS)]

    header = ["subset", *(title for _, title, _ in COLUMNS)]
    body = [cells(name, m) for name, m in result["subsets"].items()]
    overall = cells("overall", result["overall"])
    widths = [max(len(row[i]) for row in [header, *body, overall]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join([row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))])

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, body), rule, line(overall)])


def subsample(pairs: list[PreferencePair], max_pairs: int | None, seed: int) -> list[PreferencePair]:
    """A seeded random ``max_pairs`` of the pairs, in file order (every subset keeps its share)."""
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), max_pairs))
    return [pairs[i] for i in keep]


def heldout_pairs(run_dir: str, report: DataReport) -> tuple[list[PreferencePair], str, DataConfig]:
    """The pairs a training run held out, split again from its ``recipe.yaml`` exactly as
    training split them; also a description of where they came from, and the run's ``data``.

    ``run_dir`` is the training output folder, or its ``model/`` or ``adapter/``.
    """
    from rmkit.config import load_recipe

    run = Path(run_dir)
    recipe_file = next((folder / "recipe.yaml" for folder in (run, run.parent) if (folder / "recipe.yaml").is_file()), None)
    if recipe_file is None:
        raise MissingPath(f"--heldout needs an rmkit training run: no recipe.yaml in {run} or {run.parent}")
    data = load_recipe(recipe_file).data
    try:
        _, heldout = load_pair_split(data, report)
    except FileNotFoundError as err:
        raise MissingPath(f"{recipe_file}: {err} (its paths are relative to where training ran)") from err
    if not heldout:
        raise DataError(f"{recipe_file}: the run held out no pairs (data.eval_fraction is 0 and no data.eval_path)")
    where = data.eval_path or f"{data.path} (held-out {data.eval_fraction:g}, seed {data.seed})"
    return heldout, where, data


# ----------------------------------------------------------------------------- the model part


def score_pairs(model, tokenizer, pairs: list[PreferencePair], batch_size: int, max_length: int, report: DataReport):
    """``(pairs, chosen, rejected)`` for the pairs whose both replies fit ``max_length``, encoded
    as training encodes them (so a run's held-out pairs are those its eval scored), counted as pairs."""
    from rmkit.data.encode import SpecialTokens, encode_pair
    from rmkit.sampling.score import score_ids

    special = SpecialTokens.of(tokenizer)
    kept, sequences = [], []
    for pair in pairs:
        example = encode_pair(tokenizer, pair, max_length, special, report)
        if example is not None:
            kept.append(pair)
            sequences += [example["input_ids_chosen"], example["input_ids_rejected"]]
    if not kept:
        raise DataError(f"no pair fits max_length={max_length} ({report.summary()})")
    rewards = score_ids(model, tokenizer.pad_token_id, sequences, batch_size)
    return kept, rewards[0::2], rewards[1::2]


def evaluate(
    reward_model: str,
    data: str | None,
    *,
    format: str = "auto",
    split: str = "test",
    max_pairs: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    max_length: int | None = None,
    on_error: str = "raise",
    dtype: str = "float32",
) -> dict:
    """Score every pair of ``data`` with ``reward_model``; return the metrics and what was used.

    ``data=None`` takes the pairs the training run ``reward_model`` held out (see :func:`heldout_pairs`),
    at the run's ``data.max_length`` unless ``max_length`` is given (else :data:`MAX_LENGTH`).
    """
    from rmkit.config import ScoreConfig
    from rmkit.sampling.score import load_reward_model

    from rmkit.models import check_model

    check_model(reward_model, "reward model")  # before the data is read
    report = DataReport()
    if data is None:
        pairs, data, run_data = heldout_pairs(reward_model, report)
        max_length = max_length or run_data.max_length
    else:
        pairs = load_pairs(data, format, on_error, report, split)
    max_length = max_length or MAX_LENGTH
    pairs = subsample(pairs, max_pairs, seed)
    model, tokenizer = load_reward_model(ScoreConfig(reward_model=reward_model, dtype=dtype))
    started = time.perf_counter()
    scored, chosen, rejected = score_pairs(model, tokenizer, pairs, batch_size, max_length, report)
    report.kept = len(scored)
    return {
        "reward_model": reward_model,
        "data": data,
        "max_length": max_length,
        **results(scored, chosen, rejected),
        "pairs_dropped_too_long": len(pairs) - len(scored),
        "score_seconds": round(time.perf_counter() - started, 2),
        "data_report": report.to_dict(),
    }


# ----------------------------------------------------------------------------- command line


def add_arguments(parser) -> None:
    parser.add_argument("reward_model", help="an rmkit training output folder, its model/ or adapter/, or a HF classifier")
    parser.add_argument("data", nargs="?", help="preference pairs: file, folder, glob or hub dataset (any supported format)")
    parser.add_argument("--heldout", action="store_true", help="instead of DATA: the pairs the training run REWARD_MODEL held out")
    parser.add_argument("--format", choices=["auto", *PAIR_FORMATS], default="auto", help="pair format (default: auto)")
    parser.add_argument("--split", default="test", help="the split of a hub dataset, or of a folder's files by name (default: test)")
    parser.add_argument("--max-pairs", type=int, default=None, help="score a seeded random sample of this many pairs")
    parser.add_argument("--seed", type=int, default=0, help="for --max-pairs (default: 0)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--max-length", type=int, default=None,
        help=f"tokens per conversation; oldest turns go first (default: with --heldout the run's data.max_length, else {MAX_LENGTH})",
    )
    parser.add_argument("--on-error", choices=["raise", "skip"], default="raise", help="bad records: stop, or skip and count")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")


def run(args) -> int:
    if (args.data is None) == (not args.heldout):
        raise ConfigError("give either DATA or --heldout: rmkit eval REWARD_MODEL DATA, or rmkit eval TRAINING_RUN --heldout")
    result = evaluate(
        args.reward_model,
        args.data,
        format=args.format,
        split=args.split,
        max_pairs=args.max_pairs,
        seed=args.seed,
        batch_size=args.batch_size,
        max_length=args.max_length,
        on_error=args.on_error,
        dtype=args.dtype,
    )
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(format_table(result))
    dropped = f"; {result['pairs_dropped_too_long']} pairs longer than --max-length left out" if result["pairs_dropped_too_long"] else ""
    print(f"\n{args.reward_model} on {result['data']}: {result['overall']['pairs']} pairs in {result['score_seconds']}s{dropped}", file=sys.stderr)
    return 0
