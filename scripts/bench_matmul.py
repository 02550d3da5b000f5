"""bf16 matmul throughput on this machine: the 2048² peak the training benchmark divides by,
and the shapes a 135M model's layers run at (SmolLM2-135M: hidden 576, MLP 1536, kv 192).

    python scripts/bench_matmul.py            # GFLOP/s, median of --repeats timings each
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

SHAPES = {  # name: (k, n) of x[tokens, k] @ w[k, n]
    "square 2048": (2048, 2048),
    "q/o projection 576x576": (576, 576),
    "k/v projection 576x192": (576, 192),
    "MLP up/gate 576x1536": (576, 1536),
    "MLP down 1536x576": (1536, 576),
    "LoRA A 576x16": (576, 16),
}


def gflops(tokens: int, k: int, n: int, dtype, repeats: int) -> float:
    x, w = torch.randn(tokens, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        x @ w
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        x @ w
        times.append(time.perf_counter() - started)
    return 2 * tokens * k * n / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[2048, 512])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| shape | " + " | ".join(f"{t} tokens, bf16 GFLOP/s" for t in args.tokens) + " | 2048 tokens, fp32 GFLOP/s |")
    print("| --- | " + " | ".join("---:" for _ in args.tokens) + " | ---: |")
    for name, (k, n) in SHAPES.items():
        bf16 = [gflops(t, k, n, torch.bfloat16, args.repeats) for t in args.tokens]
        fp32 = gflops(2048, k, n, torch.float32, args.repeats)
        print(f"| {name} | " + " | ".join(f"{g:.0f}" for g in bf16) + f" | {fp32:.0f} |")


if __name__ == "__main__":
    main()
