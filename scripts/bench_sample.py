"""Sampling throughput: vLLM vs the transformers backend on MT-bench's two-turn prompts.

Each contender samples the same prompts through rmkit's own pipeline (``sample_prompts``:
every prompt's turn-k requests in one backend call, N independent two-turn trajectories a
prompt, the same seeds); tokens/s counts generated tokens over the sampling, engine
start-up reported apart. Contenders run interleaved (vllm, transformers, vllm, ...),
``--rounds`` times, each run its own process. The transformers backend is ~10x slower, so
by default it samples only the first ``--transformers-prompts`` prompts (its batches have
the same shape as in a full run, so its tokens/s is the full run's). ``--score`` adds the
reward-scoring batch-order comparison.

    python scripts/bench_sample.py --prompts 32 --n 8 --max-tokens 192 --rounds 3 --write docs/benchmarks.md

``--executor ray --workers 1,2`` instead times whole ``rmkit sample`` runs of the same prompts
(both turns), local and on a new local Ray with 1 and 2 workers: rounds interleaved (A B C
A B C ...), each run in its own process; tokens/s counts generated tokens over the process's
wall time, start-up included, since that is the overhead Ray adds.

    python scripts/bench_sample.py --executor ray --workers 1,2 --rounds 3 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchlib  # noqa: E402  (scripts/ is on the path when this runs as a script)

HEADING = "## Sampling"
SCORING_HEADING = "## Scoring batch order"

# Sample-recipe settings of each contender, over the shared ones (policy, dtype, N, max_tokens ...).
CONTENDERS = {
    "vllm": {"backend": "vllm", "enforce_eager": True},
    "vllm-compiled": {"backend": "vllm", "enforce_eager": False},  # torch.compile: minutes of start-up on a CPU
    "transformers": {"backend": "transformers"},
    "vllm-core-reserved": {"backend": "vllm", "enforce_eager": True},  # as vllm, but vLLM's own core reservation
    "vllm-in-process": {"backend": "vllm", "enforce_eager": True},  # as vllm, but the engine inside the sampling process
}
# Environment of each contender's process, over the inherited one.
CONTENDER_ENV = {
    "vllm-core-reserved": {"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"},
    "vllm-in-process": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},  # what `rmkit chat` does
}


def sample_config(args, name: str):
    from rmkit.config.sections import SampleConfig

    return SampleConfig(
        policy=args.policy,
        dtype=args.dtype,
        max_tokens=args.max_tokens,
        n=args.n,
        temperature=args.temperature,
        batch_size=args.batch_size,
        **CONTENDERS[name],
    )


def run_sampler(args, name: str) -> dict:
    from rmkit.data.formats import load_prompts
    from rmkit.sampling.generate import sample_prompts
    from rmkit.sampling.policy import load_policy

    cfg = sample_config(args, name)
    prompts = load_prompts(args.questions)[: args.transformers_prompts if cfg.backend == "transformers" else args.prompts]
    began = time.perf_counter()
    loaded = load_policy(cfg, sequences=len(prompts) * cfg.n)  # start-up includes the tokenizer's load
    startup = time.perf_counter() - began
    began = time.perf_counter()
    groups = sample_prompts(prompts, loaded.backend, loaded.policy, cfg)
    seconds = time.perf_counter() - began
    tokens = sum(turn["tokens"] for lines in groups for line in lines for turn in line["turns"])
    return {
        "prompts": len(prompts),
        "turns": max(len(p.turns) for p in prompts),
        "startup_s": startup,
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
    }


def child(args) -> None:
    os.environ.update(CONTENDER_ENV.get(args.child, {}))
    result = run_sampler(args, args.child)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux counts KiB
    Path(args.result).write_text(json.dumps(result))


def markdown(args, results: dict[str, list[dict]], loads: tuple[str, str]) -> str:
    names = list(results)
    baseline = names[-1]
    tps = {name: [r["tokens_per_s"] for r in runs] for name, runs in results.items()}
    lines = [
        HEADING,
        "",
        *benchlib.header("python scripts/bench_sample.py " + " ".join(sys.argv[1:])),
        "",
        f"Policy `{args.policy}` ({args.dtype}), MT-bench questions (both turns, each turn answered with the "
        f"conversation so far), N={args.n} independent trajectories a question, max_tokens={args.max_tokens} a turn, "
        f"temperature {args.temperature}; transformers batch size {args.batch_size}. {args.rounds} rounds interleaved "
        f"({' '.join(names)} ...), each run its own process. Load average (1/5/15 min) {loads[0]} before, "
        f"{loads[1]} after.",
        "",
        "| backend | questions | engine start s, median | sampling s, median | generated tokens | tokens/s, median (min–max) "
        "| peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {runs[0]['prompts']} | {benchlib.median([r['startup_s'] for r in runs]):.1f} "
            f"| {benchlib.median([r['seconds'] for r in runs]):.1f} | {runs[0]['tokens']:,} | {benchlib.spread(tps[name])} "
            f"| {max(r['peak_rss_mb'] for r in runs):,.0f} |"
            for name, runs in results.items()
        ),
        "",
        *benchlib.rounds_table(results, tps),
        "",
        *(
            f"{name} / {baseline} tokens/s: {benchlib.format_ratio(benchlib.ratio(tps[name], tps[baseline]))}."
            for name in names[:-1]
        ),
        "",
    ]
    return "\n".join(lines)


def bench_scoring(args):
    from rmkit.data.data_report import DataReport
    from rmkit.data.formats import load_pairs
    from rmkit.models.builtin import resolve_model
    from rmkit.scoring.reward_models import encode_all, load_trained_reward_model, score_ids

    model, tokenizer = load_trained_reward_model(resolve_model(args.reward_model))
    pairs = load_pairs(args.score_data, on_error="skip")[: args.score_examples]  # skip: the 2 identical pairs
    conversations = [pair.chosen_conversation() for pair in pairs]
    sequences = encode_all(tokenizer, conversations, args.score_max_length, DataReport())
    rows = []
    for by_length in (True, False):
        score_ids(model, tokenizer.pad_token_id, sequences[: args.score_batch_size], args.score_batch_size)  # warm-up
        began = time.perf_counter()
        score_ids(model, tokenizer.pad_token_id, sequences, args.score_batch_size, by_length=by_length)
        seconds = time.perf_counter() - began
        padded = padded_tokens(sequences, args.score_batch_size, by_length)
        real = sum(len(s) for s in sequences)
        rows.append(
            {
                "order": "by length" if by_length else "file order",
                "seconds": seconds,
                "conversations_per_s": len(sequences) / seconds,
                "padding": 1 - real / padded,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def padded_tokens(sequences, batch_size, by_length) -> int:
    from rmkit.scoring.reward_models import batches

    lengths = [len(s) for s in sequences]
    return sum(len(b) * max(lengths[i] for i in b) for b in batches(lengths, batch_size, by_length))


def scoring_markdown(args, rows) -> str:
    return "\n".join(
        [
            SCORING_HEADING,
            "",
            *benchlib.header("python scripts/bench_sample.py " + " ".join(sys.argv[1:])),
            "",
            f"Scoring {args.score_examples} conversations of `{args.score_data}` (chosen side, file order, "
            f"max_length {args.score_max_length}) with `{args.reward_model}` (float32, batch size {args.score_batch_size}), "
            f"load average {benchlib.load_average()} after:",
            "",
            "| batches | seconds | conversations/s | padding share |",
            "| --- | ---: | ---: | ---: |",
            *(f"| {r['order']} | {r['seconds']:.1f} | {r['conversations_per_s']:.1f} | {r['padding']:.0%} |" for r in rows),
            "",
        ]
    )


def bench_executors(args) -> str:
    """Interleaved rounds of `rmkit sample` per contender; the markdown section with the medians."""
    import statistics
    import tempfile

    import yaml

    contenders = [("local", [])] + [(f"ray, {k} worker(s)", ["sample.executor=ray", f"sample.workers={k}"]) for k in args.workers]
    work = Path(tempfile.mkdtemp(prefix="bench_executors_"))
    recipe = work / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "sample": {
                    "prompts": str(Path(args.questions).resolve()),
                    "max_prompts": args.prompts,
                    "policy": args.policy,
                    "backend": args.backend,
                    "n": args.n,
                    "max_tokens": args.max_tokens,
                    "temperature": args.temperature,
                    "dtype": args.dtype,
                    "batch_size": args.batch_size,
                    "chunk_size": args.chunk_size,
                    "enforce_eager": True,
                    "gpu_memory_utilization": args.gpu_memory_utilization,
                }
            }
        )
    )
    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    loads = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        for number, (name, overrides) in enumerate(contenders):
            output = work / f"round{round_}-contender{number}"
            command = [sys.executable, "-m", "rmkit.cli", "sample", str(recipe), *overrides, "-o", str(output)]
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - began
            if done.returncode:
                sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
            tokens = json.loads((output / "run.json").read_text())["timings"]["sample"]["tokens"]
            rates[name].append(tokens / seconds)
            print(json.dumps({"round": round_, "contender": name, "seconds": seconds, "tokens": tokens}), file=sys.stderr)
        loads.append(os.getloadavg()[0])
    local = rates["local"]
    lines = [
        "## Sampling on Ray",
        "",
        f"`python scripts/bench_sample.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {benchlib.machine()}; {time.strftime('%Y-%m-%d')}. "
        f"`rmkit sample` of {args.prompts} MT-bench questions (both turns), "
        f"policy `{args.policy}` ({args.backend}, {args.dtype}), N={args.n}, max_tokens={args.max_tokens}, "
        f"chunk_size={args.chunk_size}; {args.rounds} rounds, contenders interleaved, each run its own process, "
        "timed from start to exit (Ray start-up and model loading included). Load average (1 min) over the rounds: "
        f"{min(loads):.1f}-{max(loads):.1f}.",
        "",
        "| executor | tokens/s (median) | min-max | vs local (median ratio) | min-max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, values in rates.items():
        ratios = [value / base for value, base in zip(values, local)]  # per round: both ran under the same load
        lines.append(
            f"| {name} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} | "
            f"{statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |"
        )
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="smollm2-135m-instruct")
    parser.add_argument("--questions", default="../shared/data/mt_bench/question.jsonl")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--transformers-prompts", type=int, default=4, help="the transformers backend samples these first ones")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--batch-size", type=int, default=16, help="transformers backend rows per generate call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--contenders", default="vllm,transformers", help=f"from {list(CONTENDERS)}; each is compared with the last"
    )
    parser.add_argument("--score", action="store_true", help="also time reward scoring by length vs in file order")
    parser.add_argument("--reward-model", default="smollm2-135m", help="a classifier folder or built-in backbone")
    parser.add_argument("--score-data", default="../shared/data/hh_rlhf/helpful-base/test.jsonl.gz")
    parser.add_argument("--score-examples", type=int, default=256)
    parser.add_argument("--score-max-length", type=int, default=1024)
    parser.add_argument("--score-batch-size", type=int, default=8)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    parser.add_argument(
        "--executor",
        choices=["backends", "ray"],
        default="backends",
        help="ray: whole `rmkit sample` runs, local vs Ray with --workers workers",
    )
    parser.add_argument("--workers", type=lambda text: [int(k) for k in text.split(",")], default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--backend", default="transformers", help="--executor ray: the sampling backend")
    parser.add_argument("--chunk-size", type=int, default=2, help="--executor ray: prompts per chunk (what workers share out)")
    parser.add_argument("--write", type=Path, help="put the results under their heading in this markdown file")
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.executor == "ray":
        section = bench_executors(args)
        print(section)
        if args.write:
            benchlib.write_section(args.write, section.split("\n", 1)[0], section)
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench_sample_"))
    before = benchlib.load_average()
    results = benchlib.interleave(
        args.contenders.split(","), args.rounds, lambda name, i: benchlib.child_run(__file__, sys.argv[1:], name, i, workdir)
    )
    (workdir / "results.json").write_text(json.dumps(results))
    section = markdown(args, results, (before, benchlib.load_average()))
    print(section)
    if args.write:
        benchlib.write_section(args.write, HEADING, section)
    if args.score:
        scoring = scoring_markdown(args, bench_scoring(args))
        print(scoring)
        if args.write:
            benchlib.write_section(args.write, SCORING_HEADING, scoring)


if __name__ == "__main__":
    main()
