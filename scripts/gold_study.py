"""The gold study: best-of-N with a learned proxy reward model, judged by a verifier (issue 10).

    python scripts/gold_study.py [--quick] [--out DIR] [--train-prompts P] [--heldout-prompts P] [--n N] [--max-tokens T]

1. Prompts: first user turns of HH-RLHF (helpful-base test, ../shared/data), each with 1-3
   seeded IFEval constraints described by the checkers themselves; split by prompt.
2. Sample N candidates per train prompt; the gold label is IFEval's strict score; pairs are
   the gold-best vs gold-worst candidate (ties skipped).
3. Train a proxy reward model on those pairs (rmkit train).
4. Held-out prompts: sample N, score with proxy and gold; best-of-n curves (proxy pick,
   random pick, gold oracle) with 95% bootstrap intervals over prompts, and the proxy's
   pairwise accuracy on held-out gold pairs beside the longer-reply baseline.
5. One round: rmkit sft on the proxy-selected best of the train prompts, sample the held-out
   prompts with the new policy, compare its gold reward with the base policy's.

Every stage is an rmkit command (so rerunning the script resumes); the results go to
OUT/study.json and OUT/study.md, and `rmkit report OUT/heldout_base` plots the curves.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rmkit.best_of_n import bootstrap_interval, scores_by_prompt, selection_curve  # noqa: E402
from rmkit.exports import write_json, write_jsonl  # noqa: E402
from rmkit.sampling.runs import RunFolder  # noqa: E402
from rmkit.sampling.verifiers import NEEDS_NLTK_DATA, build_constraints  # noqa: E402

RECIPE = ROOT / "recipes" / "gold_study.yaml"
HH = ROOT.parent / "shared" / "data" / "hh_rlhf" / "helpful-base" / "test.jsonl.gz"
SIZES = {  # train prompts, held-out prompts, N, overrides
    "full": (64, 32, 16, []),
    "quick": (
        6, 6, 4,
        ["sample.backend=transformers", "sample.max_tokens=32", "sample.batch_size=24", "train.num_epochs=1",
         "sft.num_epochs=1", "sft.warmup_ratio=0", "sft.learning_rate=1e-3", "sft.logging_steps=1", "data.eval_fraction=0.0"],
    ),
}


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
    """``count`` seeded prompts: a question and 1-3 IFEval constraints, in ``messages`` format."""
    rng = random.Random(seed)
    questions = rng.sample(first_turns(HH), count)
    records = []
    for i, question in enumerate(questions):
        constraints = build_constraints(rng, rng.randint(1, 3), question)
        text = question + "\n\n" + " ".join(constraints["descriptions"])
        records.append({
            "id": f"hh-{i}",
            "messages": [{"role": "user", "content": text}],
            "instruction_id_list": constraints["instruction_id_list"],
            "kwargs": constraints["kwargs"],
        })
    return records


def rmkit(*args: str) -> None:
    command = [sys.executable, "-m", "rmkit.cli", *map(str, args)]
    print("+ rmkit " + " ".join(map(str, args)), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(command, check=True, cwd=ROOT, env=env)


def gold_pairs(prompts: list[dict], tokens: list[list[int]]) -> tuple[float, float, int]:
    """Proxy and longer-reply pairwise accuracy on gold-best vs gold-worst (ties count 1/2)."""
    proxy, longer, count = 0.0, 0.0, 0
    for p, lengths in zip(prompts, tokens):
        gold = p["gold"]
        best = min(range(len(gold)), key=lambda i: (-gold[i], i))
        worst = min(range(len(gold)), key=lambda i: (gold[i], i))
        if gold[best] == gold[worst]:
            continue
        count += 1
        proxy += 1.0 if p["proxy"][best] > p["proxy"][worst] else 0.5 if p["proxy"][best] == p["proxy"][worst] else 0.0
        longer += 1.0 if lengths[best] > lengths[worst] else 0.5 if lengths[best] == lengths[worst] else 0.0
    return proxy / max(count, 1), longer / max(count, 1), count


def run_scores(path: Path) -> tuple[list[dict], list[list[int]], list[str]]:
    """Per prompt: {reward, proxy, gold, ...} values, reply tokens, and the prompt ids."""
    groups = [g for g in RunFolder(path).groups() if all(line["reward"] is not None for line in g)]
    prompts = scores_by_prompt(groups)
    tokens = [[sum(t["tokens"] for t in line["turns"]) for line in g] for g in groups]
    return prompts, tokens, [g[0]["prompt_id"] for g in groups]


def mean_interval(values: list[float]) -> dict:
    low, high = bootstrap_interval(values)
    return {"mean": statistics.fmean(values), "low": low, "high": high}


def analyse(out: Path, n: int) -> dict:
    base, base_tokens, base_ids = run_scores(out / "heldout_base")
    tuned, tuned_tokens, tuned_ids = run_scores(out / "heldout_sft")
    ns = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]
    curves = {
        "proxy_pick_gold": selection_curve(base, "proxy", "gold", ns),
        "random_pick_gold": selection_curve(base, None, "gold", ns),
        "oracle_gold": selection_curve(base, "gold", "gold", ns),
        "proxy_pick_proxy": selection_curve(base, "proxy", "proxy", ns),
    }
    top = {name: curve[-1]["mean"] for name, curve in curves.items()}
    oracle_lift = top["oracle_gold"] - top["random_pick_gold"]
    proxy_acc, longer_acc, pairs = gold_pairs(base, base_tokens)
    # paired by prompt: the same held-out prompts for both policies
    shared = sorted(set(base_ids) & set(tuned_ids))
    by_id = lambda ids, rows: dict(zip(ids, rows))  # noqa: E731
    b, t = by_id(base_ids, base), by_id(tuned_ids, tuned)
    bt, tt = by_id(base_ids, base_tokens), by_id(tuned_ids, tuned_tokens)

    def policy_row(rows: dict, tokens: dict) -> dict:
        return {
            "gold_best_of_1": mean_interval([statistics.fmean(rows[i]["gold"]) for i in shared]),
            f"gold_best_of_{n}_by_proxy": mean_interval([selection_curve([rows[i]], "proxy", "gold", [n], 1)[0]["mean"] for i in shared]),
            "mean_reply_tokens": statistics.fmean(x for i in shared for x in tokens[i]),
        }

    diff1 = [statistics.fmean(t[i]["gold"]) - statistics.fmean(b[i]["gold"]) for i in shared]
    return {
        "heldout_prompts": len(base),
        "n": n,
        "prompts_with_gold_spread": sum(len(set(p["gold"])) > 1 for p in base) / len(base),
        "curves": curves,
        "proxy_recovers_of_oracle_lift": (top["proxy_pick_gold"] - top["random_pick_gold"]) / oracle_lift if oracle_lift else None,
        "heldout_gold_pairs": pairs,
        "proxy_pairwise_accuracy": proxy_acc,
        "longer_reply_accuracy": longer_acc,
        "sft_round": {
            "prompts": len(shared),
            "base": policy_row(b, bt),
            "sft": policy_row(t, tt),
            "gold_best_of_1_difference": mean_interval(diff1),
        },
    }


def markdown(result: dict, meta: dict) -> str:
    def ci(row):
        return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"

    c = result["curves"]
    lines = [
        f"Held-out prompts: {result['heldout_prompts']}, N = {result['n']}; prompts whose candidates differ in gold score: "
        f"{result['prompts_with_gold_spread']:.0%}. Gold = IFEval strict fraction of constraints followed.",
        "",
        "| n | KL bound (nats) | gold of proxy's best-of-n | gold of random pick | gold oracle best-of-n | proxy reward of its best-of-n |",
        "| ---: | ---: | --- | --- | --- | --- |",
    ]
    for i, row in enumerate(c["proxy_pick_gold"]):
        lines.append(
            f"| {row['n']} | {row['kl_bound']:.2f} | {ci(row)} | {ci(c['random_pick_gold'][i])} | {ci(c['oracle_gold'][i])} | {ci(c['proxy_pick_proxy'][i])} |"
        )
    recovered = result["proxy_recovers_of_oracle_lift"]
    s = result["sft_round"]
    n = result["n"]
    lines += [
        "",
        f"Proxy best-of-{n} recovers {'-' if recovered is None else f'{recovered:.0%}'} of the gold oracle's lift over the random pick.",
        f"Pairwise accuracy on {result['heldout_gold_pairs']} held-out gold pairs (gold-best vs gold-worst): proxy "
        f"{result['proxy_pairwise_accuracy']:.3f}, longer reply {result['longer_reply_accuracy']:.3f}.",
        "",
        f"One SFT round ({s['prompts']} held-out prompts, 95% bootstrap intervals over prompts):",
        "",
        f"| policy | gold, best of 1 | gold, proxy best of {n} | mean reply tokens |",
        "| --- | --- | --- | ---: |",
    ]
    for name in ("base", "sft"):
        row = s[name]
        lines.append(f"| {name} | {ci(row['gold_best_of_1'])} | {ci(row[f'gold_best_of_{n}_by_proxy'])} | {row['mean_reply_tokens']:.1f} |")
    lines += ["", f"SFT minus base, gold best of 1 (paired by prompt): {ci(s['gold_best_of_1_difference'])}", ""]
    lines.append(f"Command: `{meta['command']}`; machine: {meta['machine']}; {meta['minutes']:.0f} min; {meta['date']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes, small sizes (CI)")
    parser.add_argument("--out", default=None, help="work folder (default runs/gold_study[_quick])")
    parser.add_argument("--train-prompts", type=int)
    parser.add_argument("--heldout-prompts", type=int)
    parser.add_argument("--n", type=int)
    parser.add_argument("--max-tokens", type=int, help="per reply (default: the recipe's sample.max_tokens)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    began = time.time()
    size = "quick" if args.quick else "full"
    train_count, heldout_count, n, overrides = SIZES[size]
    train_count, heldout_count, n = args.train_prompts or train_count, args.heldout_prompts or heldout_count, args.n or n
    out = Path(args.out or ROOT / "runs" / f"gold_study{'_quick' if args.quick else ''}").resolve()
    (out / "prompts").mkdir(parents=True, exist_ok=True)
    prompts = build_prompts(train_count + heldout_count, args.seed)
    write_jsonl(out / "prompts" / "train.jsonl", prompts[:train_count])
    write_jsonl(out / "prompts" / "heldout.jsonl", prompts[train_count:])

    proxy = out / "proxy"
    common = [f"sample.n={n}", *overrides, *([f"sample.max_tokens={args.max_tokens}"] if args.max_tokens else [])]
    scorers = f"score.scorers=[{{name: proxy, reward_model: {proxy}, weight: 1.0}}, {{name: gold, verifier: ifeval, weight: 0.0}}, {{name: gold_loose, verifier: ifeval_loose, weight: 0.0}}]"
    gold_only = "score.scorers=[{name: gold, verifier: ifeval, weight: 1.0}, {name: gold_loose, verifier: ifeval_loose, weight: 0.0}]"
    train_run = out / "train"
    if not (proxy / "model").exists():  # once the proxy exists the train run is re-scored with it
        rmkit("sample-and-score", "-o", train_run, RECIPE, f"sample.prompts={out / 'prompts' / 'train.jsonl'}", gold_only, *common)
        rmkit("train", RECIPE, f"data.path={train_run / 'pairs.jsonl'}", f"train.output_dir={proxy}", *common)
    rmkit("score", train_run, scorers, *common)  # the proxy now selects: sft.jsonl is its best of N
    rmkit("select", train_run, scorers, *common)
    heldout = f"sample.prompts={out / 'prompts' / 'heldout.jsonl'}"
    rmkit("sample-and-score", "-o", out / "heldout_base", RECIPE, heldout, scorers, *common)
    sft_policy = out / "sft_policy"
    if not (sft_policy / "config.json").exists():
        rmkit("sft", train_run, scorers, f"sft.output_dir={sft_policy}", *common)
    rmkit("sample-and-score", "-o", out / "heldout_sft", RECIPE, heldout, scorers, f"sample.policy={sft_policy}", *common)

    result = analyse(out, n)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    meta = {
        "command": "python scripts/gold_study.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "machine": f"{cpu}, {os.cpu_count()} cores, no GPU, load average {os.getloadavg()[0]:.1f} at the end",
        "minutes": (time.time() - began) / 60,
        "date": time.strftime("%Y-%m-%d"),
        "train_prompts": train_count,
        "overrides": common,
        "excluded_instructions": list(NEEDS_NLTK_DATA),
    }
    write_json(out / "study.json", {**result, "meta": meta})
    (out / "study.md").write_text(markdown(result, meta))
    print((out / "study.md").read_text())
    return result


if __name__ == "__main__":
    main()
