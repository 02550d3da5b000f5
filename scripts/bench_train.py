"""Reward-model training throughput and memory: rmkit vs TRL's RewardTrainer on the same pairs.

Same backbone, LoRA settings, batch, steps, learning rate and bf16 autocast. Both train on
exactly the same pairs: those that fit ``--max-length`` unchanged, so neither truncation
(rmkit) nor TRL's silent filtering of long pairs changes the data. The contenders run
interleaved (rmkit, TRL, rmkit, TRL ...), ``--rounds`` times, each run in its own process so
its peak memory is its own; throughput counts the steps after ``--warmup-steps``. Held-out
accuracy is measured the same way for both (rmkit's scorer on the same held-out pairs).

    python scripts/bench_train.py --data ../shared/data/hh_rlhf --steps 20 --rounds 3 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchlib  # noqa: E402  (scripts/ is on the path when this runs as a script)

HEADING = "## Training: rmkit vs TRL's RewardTrainer"


def prepare(args, workdir: Path) -> None:
    """Write train.jsonl / eval.jsonl (TRL conversational format) of pairs that fit."""
    from rmkit.config.sections import ModelConfig
    from rmkit.data.encode import SpecialTokens, TooLong, encode_conversation
    from rmkit.data.formats import load_pairs
    from rmkit.data.sources import split_heldout
    from rmkit.models.classifier import load_tokenizer
    from rmkit.selection.exports import pair_record

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
        return pair_record(pair.chosen_conversation(), pair.rejected_conversation())

    needed = args.steps * args.batch_size
    train = list(itertools.islice(filter(fits, train), needed))
    heldout = list(itertools.islice(filter(fits, heldout), args.eval_pairs))
    if len(train) < needed:
        raise SystemExit(f"only {len(train)} training pairs fit max_length {args.max_length}; {needed} needed")
    for name, chosen in (("train", train), ("eval", heldout)):
        with open(workdir / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(record(p)) + "\n" for p in chosen)


def heldout_accuracy(model, tokenizer, eval_file: Path, max_length: int) -> float:
    from rmkit.data.formats import load_pairs
    from rmkit.scoring.reward_models import score_conversations

    pairs = load_pairs(str(eval_file))
    chosen = score_conversations(model, tokenizer, [p.chosen_conversation() for p in pairs], 16, max_length)
    rejected = score_conversations(model, tokenizer, [p.rejected_conversation() for p in pairs], 16, max_length)
    return sum(c > r for c, r in zip(chosen, rejected)) / len(pairs)


def run_rmkit(args, workdir: Path) -> dict:
    import rmkit.training.trainer
    from rmkit.config.recipe import load_recipe
    from rmkit.training.reward_loss import batch_tokens

    steps, memory = [], {}  # memory: peak RSS MB by the end of each phase
    train_step = rmkit.training.trainer.train_step

    def timed_step(accelerator, model, optimizer, scheduler, batch, cfg, group_size, tokens_per_backward):  # every micro-batch
        started = time.perf_counter()
        out = train_step(accelerator, model, optimizer, scheduler, batch, cfg, group_size, tokens_per_backward)
        real, padded = batch_tokens(batch, cfg.pad_to_multiple_of, None, tokens_per_backward).tolist()
        steps.append({"seconds": time.perf_counter() - started, "real_tokens": real, "padded_tokens": padded})
        memory["first step" if len(steps) == 1 else "training"] = peak_rss_mb()
        return out

    def after(phase: str, function):
        def wrapped(*a, **k):
            memory.setdefault(f"before {phase}", peak_rss_mb())
            out = function(*a, **k)
            memory[phase] = peak_rss_mb()
            return out

        return wrapped

    rmkit.training.trainer.train_step = timed_step
    rmkit.training.trainer.make_loaders = after(
        "data loaders", rmkit.training.trainer.make_loaders
    )  # "before data loaders": the model loaded
    rmkit.training.trainer.held_out_metrics = after("eval", rmkit.training.trainer.held_out_metrics)
    rmkit.training.trainer.save_outputs = after("save", rmkit.training.trainer.save_outputs)
    rmkit.training.trainer.merge_outputs = after("merge", rmkit.training.trainer.merge_outputs)
    recipe = load_recipe(
        None,
        [
            f"model.name_or_path={args.model}",
            f"model.pad_token={args.pad_token}",
            f"data.path={workdir / 'train.jsonl'}",
            f"data.eval_path={workdir / 'eval.jsonl'}",
            f"data.max_length={args.max_length}",
            f"train.output_dir={workdir / 'rmkit'}",
            "train.resume=never",
            f"train.per_device_batch_size={args.batch_size}",
            f"train.max_steps={args.steps}",
            f"train.learning_rate={args.lr}",
            "train.mixed_precision=bf16",
            "train.warmup_ratio=0.1",
            "train.logging_steps=10",
            f"lora.r={args.lora_r}",
            f"lora.alpha={2 * args.lora_r}",
            "lora.dropout=0.0",
            *args.rmkit_override,
        ],
    )
    import shutil

    shutil.rmtree(workdir / "rmkit", ignore_errors=True)  # each round trains afresh
    summary = rmkit.training.trainer.train(recipe)
    return {
        "steps": steps,
        "accuracy": summary["eval_accuracy"],
        "memory": memory,
        "gradient_checkpointing": summary["gradient_checkpointing"],
        "tokens_per_backward": summary["tokens_per_backward"],
    }


def run_trl(args, workdir: Path) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig, TaskType
    from transformers import AutoModelForSequenceClassification, TrainerCallback
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rmkit.config.sections import ModelConfig
    from rmkit.models.builtin import resolve_model
    from rmkit.models.classifier import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(name_or_path=args.model, pad_token=args.pad_token))
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(args.model), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    batches, steps = [], []

    class CountingCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            batch = super().torch_call(examples)
            batches.append({"real_tokens": int(batch["attention_mask"].sum()), "padded_tokens": batch["attention_mask"].numel()})
            return batch

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            steps.append({"seconds": time.perf_counter() - self.started})

    config = RewardConfig(
        output_dir=str(workdir / "trl"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        bf16=True,
        use_cpu=True,
        warmup_steps=round(0.1 * args.steps),
        lr_scheduler_type="linear",
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        max_length=args.max_length,
        seed=42,
        dataloader_num_workers=0,
    )
    trainer = RewardTrainer(
        model=model,
        args=config,
        processing_class=tokenizer,
        train_dataset=load_dataset("json", data_files=str(workdir / "train.jsonl"), split="train"),
        data_collator=CountingCollator(pad_token_id=tokenizer.pad_token_id),
        callbacks=[StepTimer()],
        peft_config=LoraConfig(
            task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules="all-linear"
        ),
    )
    trainer.train()
    model = trainer.model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        accuracy = heldout_accuracy(model, tokenizer, workdir / "eval.jsonl", args.max_length)
    # Batches are collated in step order (the loader may collate one ahead: keep the first ``steps``).
    return {
        "steps": [{**t, **b} for t, b in zip(steps, batches)],
        "accuracy": accuracy,
        "gradient_checkpointing": config.gradient_checkpointing,
    }


CONTENDERS = {"rmkit": run_rmkit, "trl": run_trl}  # the first is the ratio's numerator


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux counts KiB


def child(args) -> None:
    result = CONTENDERS[args.child](args, Path(args.workdir))
    result["peak_rss_mb"] = peak_rss_mb()
    Path(args.result).write_text(json.dumps(result))


def throughput(run: dict, warmup: int) -> dict:
    """Real tokens/s and padding efficiency over the steps after the warm-up."""
    steps = run["steps"][warmup:]
    real = sum(s["real_tokens"] for s in steps)
    return {"tokens_per_s": real / sum(s["seconds"] for s in steps), "padding": real / sum(s["padded_tokens"] for s in steps)}


def markdown(args, results: dict[str, list[dict]], loads: tuple[str, str]) -> str:
    names = list(results)
    speeds = {name: [throughput(run, args.warmup_steps) for run in runs] for name, runs in results.items()}
    tps = {name: [s["tokens_per_s"] for s in rows] for name, rows in speeds.items()}
    peak_share = {name: [t * args.flops_per_token / (args.peak_gflops * 1e9) for t in values] for name, values in tps.items()}
    lines = [
        HEADING,
        "",
        *benchlib.header("python scripts/bench_train.py " + " ".join(sys.argv[1:])),
        "",
        f"Backbone `{args.model}` (pad `{args.pad_token}`), LoRA r {args.lora_r} on all linear layers, dropout 0, "
        f"lr {args.lr} linear with 10% warmup, bf16 autocast, {args.steps} steps × {args.batch_size} pairs at "
        f"max_length {args.max_length}; both train on the same pairs (those that fit unchanged), held-out accuracy by "
        f"the same scorer on the same {args.eval_pairs} pairs. {args.rounds} rounds interleaved "
        f"({' '.join(names)} {' '.join(names)} ...), each run its own process; tokens/s over steps "
        f"{args.warmup_steps + 1}–{args.steps}, after {args.warmup_steps} warm-up step(s). "
        f"Load average (1/5/15 min) {loads[0]} before, {loads[1]} after.",
        "",
        "| trainer | real tokens/s, median (min–max) | padding efficiency | share of bf16 matmul peak | peak RSS MB (max) "
        "| gradient checkpointing | tokens a backward | held-out accuracy |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, runs in results.items():
        lines.append(
            f"| {name} | {benchlib.spread(tps[name])} | {benchlib.median([s['padding'] for s in speeds[name]]):.3f} "
            f"| {benchlib.median(peak_share[name]):.0%} | {max(r['peak_rss_mb'] for r in runs):,.0f} "
            f"| {'on' if runs[0]['gradient_checkpointing'] else 'off'} "
            f"| {'whole batch' if runs[0].get('tokens_per_backward') is None else format(runs[0]['tokens_per_backward'], ',')} "
            f"| {benchlib.median([r['accuracy'] for r in runs]):.3f} |"
        )
    ratio = benchlib.ratio(tps[names[0]], tps[names[1]])
    lines += [
        "",
        *benchlib.rounds_table(results, tps, ratio),
        "",
        f"{names[0]} / {names[1]} real-token throughput: {benchlib.format_ratio(ratio)}. Share of peak: real tokens/s × "
        f"{args.flops_per_token / 1e6:.0f} MFLOP a token (≈ 4 × parameters for LoRA: forward and input gradients) "
        f"over {args.peak_gflops:.0f} GFLOP/s (bf16 2048² matmul, 2 threads, measured on a quiet machine).",
        "",
    ]
    for name, runs in results.items():
        if "memory" in runs[0]:
            phases = ", ".join(f"{phase} {max(r['memory'][phase] for r in runs):,.0f}" for phase in runs[0]["memory"])
            lines += [f"{name} peak RSS (MB, the most over rounds) reached by the end of each phase: {phases}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/hh_rlhf")
    parser.add_argument("--split", default="test", help="the split of --data (the shared copy holds only test files)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pad-token", default="<|endoftext|>")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps left out of tokens/s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", default="rmkit,trl", help=f"two of {list(CONTENDERS)}, the ratio's numerator first")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-pairs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument(
        "--rmkit-override",
        action="append",
        default=[],
        metavar="section.key=value",
        help="extra recipe override for rmkit, e.g. model.gradient_checkpointing=false",
    )
    parser.add_argument("--peak-gflops", type=float, default=879.0, help="the CPU's bf16 matmul peak")
    parser.add_argument("--flops-per-token", type=float, default=4 * 135e6)
    parser.add_argument("--write", type=Path, help=f"put the results under '{HEADING}' in this markdown file")
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    workdir = Path(tempfile.mkdtemp(prefix="bench_train_"))
    prepare(args, workdir)
    before = benchlib.load_average()
    results = benchlib.interleave(
        args.contenders.split(","), args.rounds, lambda name, i: benchlib.child_run(__file__, sys.argv[1:], name, i, workdir)
    )
    section = markdown(args, results, (before, benchlib.load_average()))
    (workdir / "results.json").write_text(json.dumps(results))
    print(section)
    if args.write:
        benchlib.write_section(args.write, HEADING, section)


if __name__ == "__main__":
    main()
