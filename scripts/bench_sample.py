"""Sampling throughput: vLLM vs the transformers backend, and reward scoring batch order.

Both backends get the same policy, the same MT-bench first turns and the same settings
(N candidates each); tokens/s counts generated tokens over the generate call (engine
start-up, with the tokenizer's load, reported apart). Then real conversations of varied length (HH-RLHF's first test
pairs, chosen side) are scored twice with the same reward model and batch size: batches of
similar lengths (rmkit's order) and batches in file order.

    python scripts/bench_sample.py --prompts 8 --n 8 --max-tokens 128 --write docs/benchmarks.md

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
import platform
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def generate(backend, ids, params, n) -> tuple[list, float]:
    began = time.perf_counter()
    completions = backend.generate(ids, params, n)
    return completions, time.perf_counter() - began


def bench_backends(args, prompts):
    import dataclasses

    from rmkit.config import SampleConfig
    from rmkit.sampling.backends import GenParams
    from rmkit.sampling.generate import encode_prompt, request_seed
    from rmkit.sampling.policy import load_policy

    cfg = SampleConfig(
        policy=args.policy, dtype=args.dtype, max_tokens=args.max_tokens, batch_size=args.batch_size,
        enforce_eager=True, gpu_memory_utilization=args.gpu_memory_utilization,
    )
    rows = []
    for name in ("vllm", "transformers"):
        began = time.perf_counter()
        loaded = load_policy(dataclasses.replace(cfg, backend=name))  # the start-up includes the tokenizer's load
        startup = time.perf_counter() - began
        backend, policy = loaded.backend, loaded.policy
        ids = [encode_prompt(policy.tokenizer, [{"role": "user", "content": p}], policy.budget).ids for p in prompts]
        params = [
            GenParams(temperature=args.temperature, max_tokens=args.max_tokens, stop=policy.stop,
                      stop_token_ids=policy.stop_token_ids, seed=request_seed(0, str(i), 0))
            for i in range(len(ids))
        ]
        completions, seconds = generate(backend, ids, params, args.n)
        tokens = sum(c.tokens for group in completions for c in group)
        rows.append({"backend": name, "startup_s": startup, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds})
        print(json.dumps(rows[-1]), file=sys.stderr)
        if name == "vllm":
            backend.llm.llm_engine.engine_core.shutdown()  # its memory back before transformers loads
    return rows


def bench_scoring(args):
    from rmkit.data.formats import load_pairs
    from rmkit.data.report import DataReport
    from rmkit.modeling import load_trained_reward_model
    from rmkit.builtin_models import resolve_model
    from rmkit.sampling.score import encode_all, score_ids

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
        rows.append({"order": "by length" if by_length else "file order", "seconds": seconds,
                     "conversations_per_s": len(sequences) / seconds, "padding": 1 - real / padded})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def padded_tokens(sequences, batch_size, by_length) -> int:
    from rmkit.sampling.score import batches

    lengths = [len(s) for s in sequences]
    return sum(len(b) * max(lengths[i] for i in b) for b in batches(lengths, batch_size, by_length))


def machine() -> str:
    import torch

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name")), platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}"


def markdown(args, gen_rows, score_rows) -> str:
    lines = [
        "## Sampling",
        "",
        f"`python scripts/bench_sample.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {machine()}. Policy `{args.policy}` ({args.dtype}), {args.prompts} MT-bench first turns, "
        f"N={args.n}, max_tokens={args.max_tokens}, temperature {args.temperature}; "
        f"transformers batch size {args.batch_size}.",
        "",
        "| backend | engine start (s) | generate (s) | generated tokens | tokens/s |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {r['backend']} | {r['startup_s']:.1f} | {r['seconds']:.1f} | {r['tokens']} | {r['tokens_per_s']:.0f} |" for r in gen_rows),
        "",
        f"Scoring {args.score_examples} conversations of `{args.score_data}` (chosen side, file order, "
        f"max_length {args.score_max_length}) with `{args.reward_model}` (float32, batch size {args.score_batch_size}):",
        "",
        "| batches | seconds | conversations/s | padding share |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {r['order']} | {r['seconds']:.1f} | {r['conversations_per_s']:.1f} | {r['padding']:.0%} |" for r in score_rows),
        "",
    ]
    return "\n".join(lines)


def bench_executors(args) -> str:
    """Interleaved rounds of `rmkit sample` per contender; the markdown section with the medians."""
    import statistics
    import tempfile

    import yaml

    contenders = [("local", [])] + [(f"ray, {k} worker(s)", ["sample.executor=ray", f"sample.workers={k}"]) for k in args.workers]
    work = Path(tempfile.mkdtemp(prefix="bench_executors_"))
    recipe = work / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"sample": {
        "prompts": str(Path(args.questions).resolve()), "max_prompts": args.prompts, "policy": args.policy, "backend": args.backend,
        "n": args.n, "max_tokens": args.max_tokens, "temperature": args.temperature, "dtype": args.dtype,
        "batch_size": args.batch_size, "chunk_size": args.chunk_size, "enforce_eager": True,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }}))
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
        f"Machine: {machine()}; {time.strftime('%Y-%m-%d')}. `rmkit sample` of {args.prompts} MT-bench questions (both turns), "
        f"policy `{args.policy}` ({args.backend}, {args.dtype}), N={args.n}, max_tokens={args.max_tokens}, "
        f"chunk_size={args.chunk_size}; {args.rounds} rounds, contenders interleaved, each run its own process, "
        "timed from start to exit (Ray start-up and model loading included). Load average (1 min) over the rounds: "
        f"{min(loads):.1f}-{max(loads):.1f}.",
        "",
        "| executor | tokens/s (median) | min-max | vs local (median ratio) | min-max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, values in rates.items():
        ratios = [v / l for v, l in zip(values, local)]  # per round: both ran under the same load
        lines.append(
            f"| {name} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} | "
            f"{statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |"
        )
    return "\n".join(lines + [""])


def write_section(path: Path, section: str) -> None:
    """Replace the section of ``path`` that has ``section``'s heading (or add it), leaving the rest as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(section.split("\n", 1)[0] + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="smollm2-135m-instruct")
    parser.add_argument("--reward-model", default="smollm2-135m", help="a classifier folder or built-in backbone")
    parser.add_argument("--questions", default="../shared/data/mt_bench/question.jsonl")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=16, help="transformers backend rows per generate call")
    parser.add_argument("--score-data", default="../shared/data/hh_rlhf/helpful-base/test.jsonl.gz")
    parser.add_argument("--score-examples", type=int, default=256)
    parser.add_argument("--score-max-length", type=int, default=1024)
    parser.add_argument("--score-batch-size", type=int, default=8)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    parser.add_argument("--executor", choices=["backends", "ray"], default="backends",
                        help="ray: whole `rmkit sample` runs, local vs Ray with --workers workers")
    parser.add_argument("--workers", type=lambda text: [int(k) for k in text.split(",")], default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=3, help="--executor ray: interleaved rounds")
    parser.add_argument("--backend", default="transformers", help="--executor ray: the sampling backend")
    parser.add_argument("--chunk-size", type=int, default=2, help="--executor ray: prompts per chunk (what workers share out)")
    parser.add_argument("--write", type=Path, help="put the results under their heading in this markdown file")
    args = parser.parse_args()
    if args.executor == "ray":
        section = bench_executors(args)
        print(section)
        if args.write:
            write_section(args.write, section)
        return

    prompts = [json.loads(line)["turns"][0] for line in Path(args.questions).read_text().splitlines()[: args.prompts]]
    gen_rows = bench_backends(args, prompts)
    section = markdown(args, gen_rows, bench_scoring(args))
    print(section)
    if args.write:
        write_section(args.write, section)


if __name__ == "__main__":
    main()
