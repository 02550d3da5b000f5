"""How often a reward model prefers the chosen reply: a RewardBench-style table.

    rmkit eval outputs/reward_model ../shared/data/hh_rlhf [--json] [--max-pairs 1000]
    rmkit eval outputs/reward_model --heldout     # the pairs that training run held out, at its max_length
    rmkit eval outputs/reward_model DATA --recipe RECIPE score.max_length=4096

The scoring settings are the recipe's ``score`` section (``--recipe`` and overrides; the
flags ``--batch-size``, ``--max-length``, ``--dtype`` are shorthands for its keys), and DATA is
read as its ``data`` section says (``--format``, ``--split``, ``--on-error`` for ``data.format``,
``data.split``, here the test split unless set, and ``data.on_error``). ``--max-pairs``,
``--seed``, ``--heldout`` and ``--json`` are this verb's own.

Per subset (``PreferencePair.subset``: the file stem, or its folder for split-named files)
and overall: pairwise accuracy (r_chosen > r_rejected; a tie counts half), the mean margin
r_chosen - r_rejected, the mean reward and the reward spread (standard deviation of every
reward, chosen and rejected: near zero means the model barely tells replies apart), as
training's held-out metrics are (:func:`rmkit.training.reward_loss.preference_metrics`). Overall is pooled
over all pairs, i.e. the count-weighted mean of the subsets. Beside the model, two
baselines: the longer reply (in characters) wins, and chance (0.5).
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from pathlib import Path

from rmkit.config.sections import DataConfig, ScoreConfig
from rmkit.conversation import PreferencePair, message_text
from rmkit.data.data_report import DataReport
from rmkit.data.formats import load_pair_split, load_pairs
from rmkit.errors import ConfigError, DataError, MissingPath
from rmkit.logs import note
from rmkit.training.reward_loss import preference_metrics

CHANCE = 0.5
COLUMNS = [  # (key, title, format)
    ("pairs", "pairs", "{:d}"),
    ("accuracy", "accuracy", "{:.3f}"),
    ("length_baseline", "longer wins", "{:.3f}"),
    ("chance", "chance", "{:.2f}"),
    ("mean_margin", "mean margin", "{:+.3f}"),
    ("reward_spread", "reward std", "{:.3f}"),
]


# ----------------------------------------------------------------------------- metrics


def pairwise_metrics(chosen_rewards: list[float], rejected_rewards: list[float], subsets: list[str]) -> dict:
    """``{"overall": metrics, "subsets": {name: metrics}}``, subsets in order of first appearance."""
    if not chosen_rewards or not len(chosen_rewards) == len(rejected_rewards) == len(subsets):
        raise ValueError("pairwise_metrics needs equally long, non-empty chosen, rejected and subset lists")
    members: dict[str, list[int]] = {}
    for i, subset in enumerate(subsets):
        members.setdefault(subset, []).append(i)
    return {
        "overall": preference_metrics(chosen_rewards, rejected_rewards),
        "subsets": {
            name: preference_metrics([chosen_rewards[i] for i in idx], [rejected_rewards[i] for i in idx])
            for name, idx in members.items()
        },
    }


def length_baseline(pairs: list[PreferencePair]) -> dict:
    """Accuracy of "the longer reply wins" (ties half): ``{"overall": acc, "subsets": {name: acc}}``."""
    metrics = pairwise_metrics(
        [len(message_text(p.chosen)) for p in pairs], [len(message_text(p.rejected)) for p in pairs], [p.subset for p in pairs]
    )
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
    from rmkit.config.recipe import load_recipe

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
    from rmkit.scoring.reward_models import score_ids

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
    data: str | None,
    score: ScoreConfig,
    *,
    format: str = "auto",
    split: str = "test",
    max_pairs: int | None = None,
    seed: int = 0,
    on_error: str = "raise",
    run_max_length: bool = True,
) -> dict:
    """Score every pair of ``data`` with ``score.reward_model``; return the metrics and what was used.

    ``data=None`` takes the pairs the training run ``score.reward_model`` held out (see :func:`heldout_pairs`),
    scored at the run's ``data.max_length`` when ``run_max_length`` (else at ``score.max_length``).
    """
    from rmkit.models.builtin import check_model
    from rmkit.models.lengths import fit_length
    from rmkit.scoring.reward_models import load_scoring_model

    check_model(score.reward_model, "reward model")  # before the data is read
    report = DataReport()
    length_key = "score.max_length"
    if data is None:
        pairs, data, run_data = heldout_pairs(score.reward_model, report)
        if run_max_length:
            score = dataclasses.replace(score, max_length=run_data.max_length)
            length_key = "the run's data.max_length"
    else:
        pairs = load_pairs(data, format, on_error, report, split)
        if not pairs:
            raise DataError(f"{data}: no pairs in it ({report.summary()})")
    pairs = subsample(pairs, max_pairs, seed)
    model, tokenizer = load_scoring_model(score)
    max_length = fit_length(score.max_length, model.config, tokenizer, length_key, score.reward_model)
    started = time.perf_counter()
    scored, chosen, rejected = score_pairs(model, tokenizer, pairs, score.batch_size, max_length, report)
    report.kept = len(scored)
    for line in report.check(length_key, tokenizer.unk_token):
        note(line, warning=True)
    return {
        "reward_model": score.reward_model,
        "data": data,
        "max_length": max_length,
        **results(scored, chosen, rejected),
        "pairs_dropped_too_long": len(pairs) - len(scored),
        "score_seconds": round(time.perf_counter() - started, 2),
        "data_report": report.to_dict(),
    }


# ----------------------------------------------------------------------------- command line


SCORE_FLAGS = ("score.batch_size", "score.max_length", "score.dtype")
DATA_FLAGS = ("data.format", "data.split", "data.on_error")  # how DATA is read, as training reads data.path


def add_arguments(parser) -> None:
    from rmkit.config.command_line import add_recipe_arguments, positive_int

    parser.add_argument("reward_model", help="an rmkit training output folder, its model/ or adapter/, or a HF classifier")
    parser.add_argument(
        "data",
        nargs="*",
        metavar="[DATA] [section.key=value ...]",
        help="preference pairs: file, folder, glob or hub dataset (any supported format); then recipe overrides",
    )
    # rmkit eval's own flags (no recipe key); the others below are shorthands for the keys they name.
    parser.add_argument(
        "--heldout", action="store_true",
        help="instead of DATA: the pairs the training run REWARD_MODEL held out, "
        "at its data.max_length unless score.max_length is given",
    )  # fmt: skip
    parser.add_argument("--max-pairs", type=positive_int, default=None, help="score a seeded random sample of this many pairs")
    parser.add_argument("--seed", type=int, default=0, help="for --max-pairs (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    add_recipe_arguments(parser, DATA_FLAGS + SCORE_FLAGS, overrides=False, defaults={"data.split": "test"})


def run(args) -> int:
    from rmkit.config.command_line import is_set, recipe_from_args, split_overrides

    data, overrides = split_overrides(args.data)
    if len(data) > 1 or bool(data) == args.heldout:
        raise ConfigError(
            "give either DATA or --heldout: rmkit eval REWARD_MODEL DATA, or rmkit eval TRAINING_RUN --heldout"
            + (f"; got {len(data)} data paths: {', '.join(data)}" if len(data) > 1 else "")
        )
    recipe = recipe_from_args(args, DATA_FLAGS + SCORE_FLAGS, overrides)
    score = recipe.score
    score.reward_model = args.reward_model
    result = evaluate(
        data[0] if data else None,
        score,
        format=recipe.data.format,
        split=recipe.data.split,
        max_pairs=args.max_pairs,
        seed=args.seed,
        on_error=recipe.data.on_error,
        run_max_length=not is_set(args, "score.max_length", overrides),  # --heldout: as training encoded them
    )
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(format_table(result))
    dropped = (
        f"; {result['pairs_dropped_too_long']} pairs longer than --max-length left out"
        if result["pairs_dropped_too_long"]
        else ""
    )
    print(
        f"\n{args.reward_model} on {result['data']}: {result['overall']['pairs']} pairs in {result['score_seconds']}s{dropped}",
        file=sys.stderr,
    )
    return 0
