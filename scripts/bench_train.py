"""Reward-model training throughput: rmkit vs TRL's RewardTrainer on the same pairs.

Same backbone, LoRA settings, batch, steps, learning rate and bf16 autocast. Both train on
exactly the same pairs: those that fit ``--max-length`` unchanged, so neither truncation
(rmkit) nor TRL's silent filtering of long pairs changes the data. Each trainer runs in its
own process so peak memory is its own. Held-out accuracy is measured the same way for both
(rmkit's scorer on the same held-out pairs).

    python scripts/bench_train.py --data ../shared/data/hh_rlhf --steps 40
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

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def prepare(args, workdir: Path) -> None:
    """Write train.jsonl / eval.jsonl (TRL conversational format) of pairs that fit."""
    from rmkit.config import ModelConfig
    from rmkit.data.encode import SpecialTokens, TooLong, encode_conversation
    from rmkit.data.formats import load_pairs
    from rmkit.data.sources import split_heldout
    from rmkit.modeling import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(name_or_path=args.model, pad_token=args.pad_token))
    special = SpecialTokens.of(tokenizer)
    pairs = load_pairs(args.data, on_error="skip", split=args.split)
    train, heldout = split_heldout(pairs, 0.1, seed=0)

    def fits(pair) -> bool:
        if not (pair.chosen.strip() and pair.rejected.strip()):  # HH-RLHF keeps empty replies; TRL format refuses them
            return False
        try:
            return all(
                len(encode_conversation(tokenizer, conv, 10**6, special)) <= args.max_length
                for conv in (pair.chosen_conversation(), pair.rejected_conversation())
            )
        except TooLong:
            return False

    def record(pair) -> dict:
        return {"prompt": pair.prompt, "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}]}

    needed = args.steps * args.batch_size
    train = [p for p in train if fits(p)][:needed]
    heldout = [p for p in heldout if fits(p)][: args.eval_pairs]
    if len(train) < needed:
        raise SystemExit(f"only {len(train)} training pairs fit max_length {args.max_length}; {needed} needed")
    for name, chosen in (("train", train), ("eval", heldout)):
        with open(workdir / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(record(p)) + "\n" for p in chosen)


def heldout_accuracy(model, tokenizer, eval_file: Path, max_length: int) -> float:
    from rmkit.data.formats import load_pairs
    from rmkit.sampling.score import score_conversations

    pairs = load_pairs(str(eval_file))
    chosen = score_conversations(model, tokenizer, [p.chosen_conversation() for p in pairs], 16, max_length)
    rejected = score_conversations(model, tokenizer, [p.rejected_conversation() for p in pairs], 16, max_length)
    return sum(c > r for c, r in zip(chosen, rejected)) / len(pairs)


def run_rmkit(args, workdir: Path) -> dict:
    from rmkit.config import load_recipe
    from rmkit.train import train

    recipe = load_recipe(None, [
        f"model.name_or_path={args.model}", f"model.pad_token={args.pad_token}",
        f"data.path={workdir / 'train.jsonl'}", f"data.eval_path={workdir / 'eval.jsonl'}",
        f"data.max_length={args.max_length}", f"train.output_dir={workdir / 'rmkit'}",
        f"train.per_device_batch_size={args.batch_size}", f"train.max_steps={args.steps}",
        f"train.learning_rate={args.lr}", "train.mixed_precision=bf16", "train.warmup_ratio=0.1",
        "train.logging_steps=10", f"lora.r={args.lora_r}", f"lora.alpha={2 * args.lora_r}", "lora.dropout=0.0",
    ])
    summary = train(recipe)
    return {
        "train_seconds": summary["train_seconds"],
        "real_tokens": summary["tokens"],
        "padded_tokens": summary["padded_tokens"],
        "accuracy": summary["eval_accuracy"],
    }


def run_trl(args, workdir: Path) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig, TaskType
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rmkit.config import ModelConfig
    from rmkit.modeling import load_tokenizer
    from rmkit.builtin_models import resolve_model

    tokenizer = load_tokenizer(ModelConfig(name_or_path=args.model, pad_token=args.pad_token))
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(args.model), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    counts = {"real_tokens": 0, "padded_tokens": 0}

    class CountingCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            batch = super().torch_call(examples)
            counts["real_tokens"] += int(batch["attention_mask"].sum())
            counts["padded_tokens"] += batch["attention_mask"].numel()
            return batch

    config = RewardConfig(
        output_dir=str(workdir / "trl"), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=args.lr, bf16=True, use_cpu=True, warmup_steps=round(0.1 * args.steps), lr_scheduler_type="linear",
        logging_steps=10, save_strategy="no", report_to=[], max_length=args.max_length, seed=42,
        dataloader_num_workers=0,
    )
    trainer = RewardTrainer(
        model=model, args=config, processing_class=tokenizer,
        train_dataset=load_dataset("json", data_files=str(workdir / "train.jsonl"), split="train"),
        data_collator=CountingCollator(pad_token_id=tokenizer.pad_token_id),
        peft_config=LoraConfig(task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=2 * args.lora_r,
                               lora_dropout=0.0, target_modules="all-linear"),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model = trainer.model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        accuracy = heldout_accuracy(model, tokenizer, workdir / "eval.jsonl", args.max_length)
    return {"train_seconds": seconds, **counts, "accuracy": accuracy}


def child(args) -> None:
    workdir = Path(args.workdir)
    result = (run_rmkit if args.child == "rmkit" else run_trl)(args, workdir)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (workdir / f"{args.child}.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/hh_rlhf")
    parser.add_argument("--split", default="test", help="the split of --data (the shared copy holds only test files)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pad-token", default="<|endoftext|>")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-pairs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--child", choices=["rmkit", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    workdir = Path(tempfile.mkdtemp(prefix="bench_train_"))
    prepare(args, workdir)
    results = {}
    for name in ("rmkit", "trl"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--child", name, "--workdir", str(workdir)]
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        results[name] = json.loads((workdir / f"{name}.json").read_text())
    print(f"\n{args.steps} steps x batch {args.batch_size}, max_length {args.max_length}, {args.model}, bf16 autocast\n")
    print("| trainer | real tokens/s | padding efficiency | peak RSS (MB) | held-out accuracy | train s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['real_tokens'] / r['train_seconds']:.0f} | {r['real_tokens'] / r['padded_tokens']:.3f} "
              f"| {r['peak_rss_mb']:.0f} | {r['accuracy']:.3f} | {r['train_seconds']:.0f} |")
    speedup = (results["rmkit"]["real_tokens"] / results["rmkit"]["train_seconds"]) / (
        results["trl"]["real_tokens"] / results["trl"]["train_seconds"])
    print(f"\nrmkit / TRL real-token throughput: {speedup:.2f}x")


if __name__ == "__main__":
    main()
