"""Where rmkit's training time and memory go: one forward+backward per batch of the training
benchmark's pairs, under bf16 autocast, in a variant of rmkit's step, each variant its own
process (peak RSS is the process's). One-shot, for finding levers; the interleaved
comparison with TRL is scripts/bench_train.py.

    python scripts/bench_train_variants.py --data ../shared/data/hh_rlhf --split test
    python scripts/bench_train_variants.py --variants one,grouped,runs949-one-bf16   # a choice

A variant is words joined by '-': ``one`` (each run in one forward) or ``grouped`` (forwards cut by
padding alone, 32 tokens a forward, as before); ``runsN`` (backward in runs of N tokens; else
the whole batch); ``ckpt`` (gradient checkpointing); ``bf16`` (frozen weights stored in bf16).
"""

from __future__ import annotations

import argparse
import math
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = "grouped,one,one-ckpt,grouped-bf16,one-bf16,runs949-grouped,runs949-grouped-bf16,runs949-one-bf16,runs1898-one-bf16"


def measure(args, variant: str) -> str:
    import torch

    from rmkit.config.recipe import load_recipe
    from rmkit.data.data_report import DataReport
    from rmkit.data.loaders import load_datasets, make_loaders
    from rmkit.models.classifier import load_tokenizer
    from rmkit.training.memory import store_frozen_weights_in
    from rmkit.training.reward_loss import batch_tokens, loss_and_backward
    from rmkit.training.reward_model import build_reward_model, enable_gradient_checkpointing

    words = variant.split("-")
    runs = next((int(w[4:]) for w in words if re.fullmatch(r"runs\d+", w)), None)
    cost = math.inf if "one" in words else 32
    recipe = load_recipe(
        None,
        [
            f"model.name_or_path={args.model}",
            f"model.pad_token={args.pad_token}",
            f"data.path={args.data}",
            f"data.split={args.split}",
            "data.eval_fraction=0",
            f"data.max_length={args.max_length}",
            "data.on_error=skip",
            "lora.dropout=0.0",
            f"train.per_device_batch_size={args.batch_size}",
        ],
    )
    tokenizer = load_tokenizer(recipe.model)
    train_set, _ = load_datasets(recipe.data, tokenizer, DataReport())
    loader, _ = make_loaders(train_set[: args.batches * args.batch_size * 4], [], tokenizer, recipe.train, 1)
    batches = [batch for _, batch in zip(range(args.batches), loader)]
    model = build_reward_model(recipe.model, recipe.lora, tokenizer).train()
    if "ckpt" in words:
        enable_gradient_checkpointing(model)
    if "bf16" in words:
        store_frozen_weights_in(model, torch.bfloat16)
    seconds = real = padded = 0.0
    for repeat in range(2):  # the first pass warms up
        for batch in batches:
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss_and_backward(model, batch, lambda loss: loss.backward(), runs, None, cost)
            model.zero_grad()
            if repeat:
                seconds += time.perf_counter() - started
                tokens = batch_tokens(batch, None, cost, runs).tolist()
                real, padded = real + tokens[0], padded + tokens[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"| {variant} | {real / seconds:.0f} | {padded / seconds:.0f} | {real / padded:.3f} | {rss:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/hh_rlhf")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pad-token", default="<|endoftext|>")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--variants", default=VARIANTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(args, args.child))
        return
    print("| variant | real tokens/s | padded tokens/s | padding efficiency | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for variant in args.variants.split(","):
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", variant], capture_output=True, text=True)
        print(
            next(
                (line for line in out.stdout.splitlines() if line.startswith("|")), f"| {variant} | failed: {out.stderr[-200:]} |"
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
