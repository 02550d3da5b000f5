"""Reward serving under load: `rmkit serve` with and without dynamic batching, beside offline
scoring of the same conversations, and vLLM's own pooling server / OpenRLHF's serve_rm where
they start here.

The conversations are HH-RLHF helpful-base test transcripts (chosen and rejected, those that fit
``--max-length`` tokens), cut into requests of 1 to ``--max-per-request`` conversations (seeded)
that ``--clients`` concurrent clients post (asyncio + httpx, keep-alive), bounded by the
conversation count and ``--time-limit`` seconds. Each server is a real `rmkit serve` process on
a free loopback port; offline is the recipe's scorers called in chunks as `rmkit score` calls
them, in a child process, model loading left out of both. Reported: conversations/s, the ratio
to offline, p50/p99 request latency, failed requests, the mean scoring call, and peak RSS of the
server's process tree. The reward model is ``--reward-model`` or, by default, the built-in MiniLM
encoder (22.7M parameters; ``--base smollm2-135m`` for the 135M decoder) with a seeded random
score head: rewards mean nothing, the cost is a real model's.

    python scripts/bench_serve.py --conversations 2000 --clients 32 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import benchlib  # noqa: E402  (scripts/ is on the path when this runs as a script)

HEADING = "## Serving rewards"
HH = REPO.parent / "shared" / "data" / "hh_rlhf" / "helpful-base" / "test.jsonl.gz"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


def build_reward_model(args, workdir: Path) -> Path:
    """``--reward-model``, or ``--base`` with a seeded random head and the plain template, saved as rmkit saves one."""
    if args.reward_model:
        return Path(args.reward_model)
    import torch

    from rmkit.config.sections import ModelConfig
    from rmkit.models.classifier import load_tokenizer
    from rmkit.training.reward_model import build_reward_model as build
    from rmkit.training.reward_model import save_reward_model

    folder = workdir / f"reward_model_{args.base}"
    if not (folder / "model").exists():
        cfg = ModelConfig(name_or_path=args.base, chat_template="plain")
        tokenizer = load_tokenizer(cfg)
        torch.manual_seed(0)
        save_reward_model(build(cfg, None, tokenizer), tokenizer, folder)
    return folder


def write_recipe(args, reward_model: Path, workdir: Path) -> Path:
    path = workdir / "recipe.yaml"
    score = {"reward_model": str(reward_model), "dtype": args.dtype, "batch_size": args.batch_size, "max_length": args.max_length}
    path.write_text(json.dumps({"score": score, "serve": {"max_request_bytes": 64 * 2**20}}))
    return path


def conversations(args, reward_model: Path) -> tuple[list[list[dict]], list[int]]:
    """HH-RLHF conversations that fit ``--max-length`` reward-model tokens, the first ``--conversations``, and their lengths."""
    from rmkit.data.encode import encode_conversation
    from rmkit.data.formats import load_pairs
    from rmkit.models.classifier import load_tokenizer
    from rmkit.scoring.reward_models import reward_model_config, reward_model_folder

    if not Path(args.data).exists():
        sys.exit(f"{args.data} is absent: the benchmark reads HH-RLHF helpful-base test from ../shared/data (or --data)")
    tokenizer = load_tokenizer(reward_model_config(str(reward_model_folder(reward_model))))
    kept, lengths = [], []
    for pair in load_pairs(args.data, on_error="skip"):  # 2 of its pairs have chosen == rejected
        for conversation in (pair.chosen_conversation(), pair.rejected_conversation()):
            length = len(encode_conversation(tokenizer, conversation, 10**9))
            if length <= args.max_length:
                kept.append(conversation)
                lengths.append(length)
        if len(kept) >= args.conversations:
            break
    return kept[: args.conversations], lengths[: args.conversations]


def padding(lengths: list[int], groups: list[list[int]], batch_size: int) -> float:
    """Padded tokens per real token when each group is one scoring call (length-sorted forwards of ``batch_size``)."""
    from rmkit.scoring.reward_models import batches

    padded = sum(len(b) * max(lengths[g[i]] for i in b) for g in groups for b in batches([lengths[i] for i in g], batch_size))
    return padded / sum(lengths)


def calls_of(sizes: list[int], per_call: float) -> list[list[int]]:
    """Consecutive requests joined into calls of about ``per_call`` conversations (how they arrive, roughly)."""
    groups, current, start = [], [], 0
    for size in sizes:
        current += range(start, start + size)
        start += size
        if len(current) >= per_call:
            groups, current = [*groups, current], []
    return groups + ([current] if current else [])


def request_sizes(total: int, largest: int, seed: int) -> list[int]:
    rng, sizes = random.Random(seed), []
    while sum(sizes) < total:
        sizes.append(min(rng.randint(1, largest), total - sum(sizes)))
    return sizes


# ----------------------------------------------------------------------------- offline (child process)


def offline_child(args) -> dict:
    from rmkit.config.recipe import load_recipe
    from rmkit.scoring.scorer_set import ScorerSet

    convs = json.loads(Path(args.workdir, "conversations.json").read_text())
    scorers = ScorerSet(load_recipe(args.recipe).score)
    scorers(convs[:8], [{}] * 8)  # warm-up, as the servers get
    began = time.perf_counter()
    rewards = []
    for start in range(0, len(convs), args.chunk):  # `rmkit score` scores a run chunk by chunk
        chunk = convs[start : start + args.chunk]
        rewards += [r["reward"] for r in scorers(chunk, [{}] * len(chunk))]
    seconds = time.perf_counter() - began
    scorers.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "conversations": len(convs), "rewards": rewards, "peak_rss": peak}


# ----------------------------------------------------------------------------- servers


def start_rmkit(recipe: Path, overrides: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "rmkit.cli", "serve", str(recipe), "--port", "0", *overrides],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    first = process.stdout.readline()
    if not first.startswith("rmkit serve: "):
        raise RuntimeError(f"rmkit serve did not start: {first!r}")
    return process, first.split()[2]


def start_other(command: list[str], port: int, limit: float) -> tuple[subprocess.Popen | None, str]:
    """A server command; (process, "") once /health answers, else (None, the last line it printed)."""
    import httpx

    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**ENV, "VLLM_CPU_KVCACHE_SPACE": "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + limit
    while time.time() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process, ""
        except httpx.HTTPError:
            pass
        time.sleep(2)
    stop(process, signal.SIGTERM)
    lines = [line.strip() for line in Path(log.name).read_text().splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no output")
    return (
        None,
        f"{'did not answer within ' + str(int(limit)) + ' s' if process.returncode is None else 'exited'}: {reason[:200]}",
    )


def stop(process: subprocess.Popen, sig=signal.SIGINT) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig) if sig == signal.SIGTERM else process.send_signal(sig)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def peak_rss(pid: int) -> int:
    """VmHWM of a process and its children (vLLM's engine core is one), in bytes."""
    import psutil

    total = 0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            total += next(
                int(line.split()[1]) * 1024
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if line.startswith("VmHWM")
            )
        except (FileNotFoundError, psutil.Error):
            pass
    return total


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, sizes: list[int], clients: int, payload, rewards_of, time_limit: float) -> dict:
    """``clients`` tasks post the requests in turn; latency of each, failures, rewards in order."""
    import httpx

    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    queue = list(zip(starts, sizes))[::-1]
    latencies, failed, rewards = [], [], {}
    began = time.perf_counter()
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients)) as client:

        async def client_loop():
            while queue and time.perf_counter() - began < time_limit:
                start, size = queue.pop()
                sent = time.perf_counter()
                try:
                    answer = await client.post(url, json=payload(start, size))
                    ok = answer.status_code == 200
                except httpx.HTTPError as err:
                    ok, answer = False, err
                latencies.append(time.perf_counter() - sent)
                if ok:
                    for k, value in enumerate(rewards_of(answer.json())):
                        rewards[start + k] = value
                else:
                    failed.append(str(getattr(answer, "text", answer))[:200])

        await asyncio.gather(*(client_loop() for _ in range(clients)))
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "conversations": len(rewards),
        "requests": len(latencies),
        "failed": failed,
        "p50": statistics.median(latencies),
        "p99": sorted(latencies)[max(0, int(0.99 * len(latencies)) - 1)],
        "rewards": rewards,
    }


def batch_mean(url: str) -> float | None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    values = {s.name: s.value for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text) for s in f.samples}
    count = values.get("rmkit_serve_batch_conversations_count")
    return values["rmkit_serve_batch_conversations_sum"] / count if count else None


# rmkit serve contenders: their recipe overrides.
RMKIT = {
    "batching": ("rmkit serve", []),
    "no-batching": ("rmkit serve, batching off", ["serve.batching=false"]),
    "vllm-backend": ("rmkit serve, score.backend=vllm", ["score.backend=vllm", "score.enforce_eager=true"]),
}


def run_rmkit(args, recipe: Path, convs: list, sizes: list[int], overrides: list[str]) -> dict:
    try:
        process, url = start_rmkit(recipe, overrides)
    except RuntimeError as err:
        return {"skipped": str(err)}
    try:
        payload = lambda start, size: {"conversations": convs[start : start + size]}  # noqa: E731
        rewards_of = lambda answer: [r["reward"] for r in answer["results"]]  # noqa: E731
        asyncio.run(load(f"{url}/score", [2, 2], 2, payload, rewards_of, 600))  # warm-up
        result = asyncio.run(load(f"{url}/score", sizes, args.clients, payload, rewards_of, args.time_limit))
        result["batch_mean"] = batch_mean(url)
        result["peak_rss"] = peak_rss(process.pid)
    finally:
        stop(process)
    return result


def run_vllm(args, reward_model: Path, texts: list[str], sizes: list[int]) -> dict:
    """vLLM's OpenAI-compatible server with the pooling runner, loaded through its /classify."""
    from rmkit.scoring.reward_models import reward_model_folder

    port, folder = free_port(), str(reward_model_folder(reward_model))
    # `python -m` the server module: vllm-cpu's `vllm` console script looks up the metadata of a package named vllm and fails.
    server = ["vllm.entrypoints.openai.api_server", "--model", folder, "--runner", "pooling", "--port", str(port)]
    command = [sys.executable, "-m", *server, "--dtype", args.dtype, "--max-model-len", str(args.max_length), "--enforce-eager"]
    process, reason = start_other(command, port, args.start_limit)
    if process is None:
        return {"skipped": f"vLLM's pooling server {reason}"}
    try:
        payload = lambda start, size: {"model": folder, "input": texts[start : start + size]}  # noqa: E731
        rewards_of = lambda answer: [d["probs"][0] for d in answer["data"]]  # noqa: E731
        asyncio.run(load(f"http://127.0.0.1:{port}/classify", [2, 2], 2, payload, rewards_of, 600))
        result = asyncio.run(load(f"http://127.0.0.1:{port}/classify", sizes, args.clients, payload, rewards_of, args.time_limit))
        result["peak_rss"] = peak_rss(process.pid)
    finally:
        stop(process, signal.SIGTERM)
    return result


def run_openrlhf(args, reward_model: Path, texts: list[str], sizes: list[int]) -> dict:
    from rmkit.scoring.reward_models import reward_model_folder

    port = free_port()
    model = str(reward_model_folder(reward_model))
    command = [sys.executable, "-m", "openrlhf.cli.serve_rm", "--reward.model_name_or_path", model, "--port", str(port)]
    command += ["--host", "127.0.0.1", "--ds.attn_implementation", "sdpa", "--data.max_len", str(args.max_length)]
    process, reason = start_other(command, port, args.start_limit)
    if process is None:
        return {"skipped": f"OpenRLHF's serve_rm {reason}"}
    try:
        payload = lambda start, size: {"query": texts[start : start + size]}  # noqa: E731
        result = asyncio.run(
            load(f"http://127.0.0.1:{port}/get_reward", sizes, args.clients, payload, lambda a: a["rewards"], args.time_limit)
        )
        result["peak_rss"] = peak_rss(process.pid)
    finally:
        stop(process, signal.SIGTERM)
    return result


# ----------------------------------------------------------------------------- the table


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def table(args, rounds: list[tuple[dict, dict]], load_before: str, load_after: str, lengths: list[int], sizes: list[int]) -> str:
    """Every round's rows (offline first, each contender's ratio to that round's offline), then each ratio over the rounds."""
    convs = len(lengths)
    chunks = [list(range(i, min(i + args.chunk, convs))) for i in range(0, convs, args.chunk)]
    lines = [
        *benchlib.header(f"python scripts/bench_serve.py {shlex.join(sys.argv[1:])}"),
        "",
        f"{convs} HH-RLHF helpful-base test conversations (≤ {args.max_length} tokens), reward model "
        f"{args.reward_model or args.base + ' with a random head'} in {args.dtype}, score.batch_size={args.batch_size}; "
        f"{args.clients} concurrent clients posting requests of 1–{args.max_per_request} conversations (seeded) over loopback. "
        f"Load average before / after: {load_before} → {load_after} (the 2 cores are shared with other jobs). "
        f"Offline: the recipe's scorers called in chunks of {args.chunk} conversations, as `rmkit score` calls them, in its own "
        "process. Contenders run in turn, offline first, each round; a ratio is to the same round's offline. Throughput counts "
        "answered conversations over the wall time of the load; the clients run on the same cores.",
        "",
        "| round | contender | conversations/s | × offline | p50 latency | p99 latency | requests (failed) "
        "| mean scoring call | peak RSS |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes, ratios = [], {}
    for number, (offline, results) in enumerate(rounds, 1):
        base = offline["conversations"] / offline["seconds"]
        lines.append(
            f"| {number} | offline (ScorerSet, as `rmkit score`) | {base:.1f} | 1.00 | – | – | – | {min(args.chunk, convs)} | "
            f"{gib(offline['peak_rss'])} |"
        )
        for name, result in results.items():
            if "skipped" in result:
                notes.append(f"- {name}: {result['skipped']}")
                continue
            rate = result["conversations"] / result["seconds"]
            ratios.setdefault(name, ([], []))[0].append(rate)
            ratios[name][1].append(base)
            mean = f"{result['batch_mean']:.1f}" if result.get("batch_mean") else "–"
            lines.append(
                f"| {number} | {name} | {rate:.1f} | {rate / base:.2f} | "
                f"{result['p50'] * 1000:.0f} ms | {result['p99'] * 1000:.0f} ms | "
                f"{result['requests']} ({len(result['failed'])}) | {mean} | {gib(result['peak_rss'])} |"
            )
            if result.get("padded"):
                notes.append(
                    f"- round {number}, {name}: padded tokens per real token "
                    f"{padding(lengths, calls_of(sizes, result['batch_mean']), args.batch_size):.2f} in calls of about "
                    f"{result['batch_mean']:.0f} conversations as they came (estimated), against offline's "
                    f"{padding(lengths, chunks, args.batch_size):.2f}: "
                    "offline sorts a whole chunk by length, a server what arrived together"
                )
            if result.get("difference") is not None:
                notes.append(
                    f"- round {number}, {name}: rewards differ from offline by at most {result['difference']:.1e} ({args.dtype})"
                )
            if result["failed"]:
                notes.append(f"- round {number}, {name}: first failure: {result['failed'][0]}")
    summary = [f"- {name} / offline: {benchlib.format_ratio(benchlib.ratio(*pair))}" for name, pair in ratios.items()]
    return "\n".join([f"{args.heading}\n", *lines, "", *summary, *sorted(set(notes), key=notes.index), ""])


def texts_of(reward_model: Path, convs: list) -> list[str]:
    """The conversations rendered with the reward model's template: what vLLM's and OpenRLHF's servers read."""
    from rmkit.data.templates import render
    from rmkit.models.classifier import load_tokenizer
    from rmkit.scoring.reward_models import reward_model_config, reward_model_folder

    tokenizer = load_tokenizer(reward_model_config(str(reward_model_folder(reward_model))))
    return [render(tokenizer, c) for c in convs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HH), help="HH-RLHF helpful-base test.jsonl.gz (default: ../shared/data/...)")
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-per-request", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--chunk", type=int, default=512, help="offline: conversations per scoring call (a run chunk: 64 prompts x 8)"
    )
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--reward-model", help="a reward model folder (default: --base with a random head)")
    parser.add_argument(
        "--base", default="minilm", help="the built-in backbone of the default reward model (minilm, smollm2-135m)"
    )
    parser.add_argument("--heading", default=HEADING, help="the section of --write to replace")
    parser.add_argument("--contenders", default="batching,no-batching,vllm-backend,vllm,openrlhf")
    parser.add_argument("--time-limit", type=float, default=240, help="seconds of load per contender at most")
    parser.add_argument("--start-limit", type=float, default=240, help="seconds a vLLM / OpenRLHF server may take to start")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of offline then every contender")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir")
    parser.add_argument("--write", help="replace this section of a markdown file (docs/benchmarks.md)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--recipe", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        Path(args.result).write_text(json.dumps(offline_child(args)))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed: the servers it started stop too (finally)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_serve_"))
    load_before = benchlib.load_average()
    reward_model = build_reward_model(args, workdir)
    recipe = write_recipe(args, reward_model, workdir)
    convs, lengths = conversations(args, reward_model)
    (workdir / "conversations.json").write_text(json.dumps(convs))
    sizes = request_sizes(len(convs), args.max_per_request, args.seed)
    print(f"{len(convs)} conversations in {len(sizes)} requests", file=sys.stderr)
    rounds = []
    for round_ in range(args.rounds):
        offline = benchlib.child_run(
            __file__, [*sys.argv[1:], "--recipe", str(recipe), "--workdir", str(workdir)], "offline", round_, workdir
        )
        results = {}
        for name in args.contenders.split(","):
            print(f"round {round_ + 1}: {name} (load {benchlib.load_average()})", file=sys.stderr, flush=True)
            if name in RMKIT:
                label, overrides = RMKIT[name]
                results[label] = run_rmkit(args, recipe, convs, sizes, overrides)
                results[label]["padded"] = (
                    "score.backend=vllm" not in overrides and "skipped" not in results[label]
                )  # vLLM packs sequences
            elif name == "vllm":
                results["vLLM pooling server (`--runner pooling`)"] = run_vllm(
                    args, reward_model, texts_of(reward_model, convs), sizes
                )
            else:
                results["OpenRLHF serve_rm"] = run_openrlhf(args, reward_model, texts_of(reward_model, convs), sizes)
        for result in results.values():
            if result.get("rewards"):
                result["difference"] = max(abs(value - offline["rewards"][i]) for i, value in result["rewards"].items())
        rounds.append((offline, results))
    section = table(args, rounds, load_before, benchlib.load_average(), lengths, sizes)
    print(section)
    if args.write:
        benchlib.write_section(Path(args.write), args.heading, section)


if __name__ == "__main__":
    main()
