"""The reward-model trainer behind ``rmkit train`` (:mod:`rmkit.train`): a LoRA (or full)
sequence-classification model fit to chosen/rejected pairs.

The loss is Bradley-Terry, -log σ(r_chosen - r_rejected - margin), with chosen and
rejected replies in one forward (:mod:`rmkit.training.reward_loss`). Every process takes an
equal slice of the same global batch (``split_batches``), so N processes train exactly as one
process with an N times larger per-device batch. ``output_dir`` gets ``adapter/``,
``model/`` (merged), ``metrics.jsonl``, ``summary.json``, ``recipe.yaml``, ``checkpoints/step-N``
and ``rmkit.log`` (what the engines logged, :mod:`rmkit.logs`). A rerun resumes from the
latest checkpoint, and refuses one trained with other result-affecting settings unless told
``overwrite``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rmkit import logs
from rmkit.atomic_files import write_json
from rmkit.config.fingerprint import fingerprint
from rmkit.config.recipe import dump_recipe
from rmkit.config.sections import Recipe, TrainConfig
from rmkit.data.data_report import DataReport
from rmkit.data.loaders import load_datasets, make_loaders
from rmkit.errors import ConfigError
from rmkit.training.checkpoints import (
    CHECKPOINTS,
    TRAINING_SECTIONS,
    Progress,
    check_same_settings,
    find_resume_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from rmkit.training.memory import memory_line, peak_memory, plan_memory, return_freed_memory
from rmkit.training.metrics_log import MetricsLog, tracker_config
from rmkit.training.reward_loss import batch_tokens, forward_cost, loss_and_backward, pair_metrics, pair_rewards

# torch, transformers and accelerate are imported where used, so `rmkit --help` stays fast.
if TYPE_CHECKING:
    import torch


# ----------------------------------------------------------------------------- the loop


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    return Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        # Each process gets a slice of one global batch: N processes step through exactly
        # the batches (and the LR schedule) of one process.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        log_with=cfg.report_to or None,
        project_config=ProjectConfiguration(project_dir=cfg.output_dir, logging_dir=str(Path(cfg.output_dir) / "runs")),
    )


def check_launch(accelerator) -> None:
    """Fail when the launcher started more processes than Accelerate sees.

    They would each train alone into the same folder: what happens on a machine without a
    GPU unless Accelerate is told to use the CPU (ACCELERATE_USE_CPU=1).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > accelerator.num_processes:
        raise ConfigError(
            f"{launched} processes were launched but Accelerate sees {accelerator.num_processes}; without a GPU, "
            "launch with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N (see docs/training.md)"
        )
    from accelerate.utils import DistributedType

    sharded = {
        "ACCELERATE_USE_FSDP": ("FSDP", DistributedType.FSDP),
        "ACCELERATE_USE_DEEPSPEED": ("DeepSpeed", DistributedType.DEEPSPEED),
    }
    for variable, (name, kind) in sharded.items():
        if os.environ.get(variable, "false").lower() == "true" and accelerator.distributed_type != kind:
            # Accelerate turns FSDP and DeepSpeed off on a CPU without a word: say what runs instead.
            logs.note(
                f"the launch asks for {name}, which Accelerate runs on GPUs only: these {accelerator.num_processes} "
                f"process(es) train as {accelerator.distributed_type.value} instead (every process holds the whole model)",
                warning=True,
            )


def tell_deepspeed(accelerator, cfg: TrainConfig) -> None:
    """DeepSpeed cannot read the batch size off a batch sampler; the recipe also sets clipping."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.per_device_batch_size
        plugin.deepspeed_config["gradient_clipping"] = cfg.max_grad_norm


def count_steps(cfg: TrainConfig, batches_per_epoch: int) -> tuple[int, int]:
    """``(steps per epoch, total steps)``; an epoch's last accumulation may be short."""
    per_epoch = math.ceil(batches_per_epoch / cfg.gradient_accumulation_steps)
    return per_epoch, cfg.max_steps if cfg.max_steps is not None else math.ceil(cfg.num_epochs * per_epoch)


def make_optimizer(model, cfg: TrainConfig, total_steps: int):
    """AdamW over the trainable parameters, with warmup then ``cfg.lr_scheduler``."""
    import torch
    from transformers import get_scheduler

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    return optimizer, get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def held_out_metrics(accelerator, model, loader) -> dict:
    """Metrics over the whole held-out split, gathered from every process."""
    import torch

    model.eval()
    chosen, rejected, margins = [], [], []
    for batch in loader:
        with torch.no_grad():
            r_chosen, r_rejected = pair_rewards(model, batch, forward_cost=forward_cost(accelerator))
        margin = batch.get("margin", torch.zeros_like(r_chosen))
        r_chosen, r_rejected, margin = accelerator.gather_for_metrics((r_chosen, r_rejected, margin))
        chosen.append(r_chosen), rejected.append(r_rejected), margins.append(margin)
    model.train()
    return pair_metrics(torch.cat(chosen), torch.cat(rejected), torch.cat(margins))


def accumulation_group_size(batch_in_epoch: int, batches_per_epoch: int, accumulation_steps: int) -> int:
    """Micro-batches in the accumulation group of an epoch's ``batch_in_epoch``-th (from 0): the last may be short."""
    start = batch_in_epoch // accumulation_steps * accumulation_steps
    return min(accumulation_steps, batches_per_epoch - start)


def train_step(
    accelerator, model, optimizer, scheduler, batch, cfg: TrainConfig, group_size: int, tokens_per_backward: int | None = None
) -> tuple[torch.Tensor, float | None]:
    """One micro-batch of an accumulation group of ``group_size``, backpropagated in runs of at
    most ``tokens_per_backward`` tokens; the optimizer steps when Accelerate says the group is
    complete, with the mean gradient over its micro-batches."""
    grad_norm = None
    # Accelerate divides by the full count: a short last group would weigh less.
    scale = cfg.gradient_accumulation_steps / group_size
    with accelerator.accumulate(model):
        loss = loss_and_backward(
            model,
            batch,
            lambda run_loss: accelerator.backward(run_loss * scale),
            tokens_per_backward,
            cfg.pad_to_multiple_of,
            forward_cost(accelerator),
            cfg.center_rewards_coefficient,
        )
        if accelerator.sync_gradients and cfg.max_grad_norm:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return loss, None if grad_norm is None else float(grad_norm)


def epoch_loader(accelerator, train_loader, prepared, progress: Progress):
    """The prepared loader for ``progress.epoch``, past the batches a resumed run already trained on."""
    train_loader.batch_sampler.epoch = progress.epoch  # the shared FullBatches behind ``prepared``
    if progress.batches_in_epoch:
        return accelerator.skip_first_batches(prepared, progress.batches_in_epoch)
    return prepared


def record(
    accelerator,
    progress: Progress,
    loss,
    batch: dict,
    batches_per_epoch: int,
    multiple_of: int | None = None,
    tokens_per_backward: int | None = None,
) -> None:
    """Count a micro-batch: its loss (averaged over processes), tokens, and place in the epoch."""
    import torch

    tokens = batch_tokens(batch, multiple_of, forward_cost(accelerator), tokens_per_backward)
    totals = accelerator.reduce(torch.cat([loss.float()[None], tokens.float()]), "sum")
    progress.loss_window.append(totals[0].item() / accelerator.num_processes)
    progress.tokens += int(totals[1])
    progress.padded_tokens += int(totals[2])
    progress.batches_in_epoch += 1
    if progress.batches_in_epoch == batches_per_epoch:  # roll over now: a checkpoint here resumes at the next epoch
        progress.epoch, progress.batches_in_epoch = progress.epoch + 1, 0


def log_line(progress: Progress, lr: float, grad_norm: float | None, steps_per_epoch: int) -> dict:
    line = {"loss": sum(progress.loss_window) / len(progress.loss_window), "lr": lr, "epoch": progress.step / steps_per_epoch}
    if grad_norm is not None:
        line["grad_norm"] = grad_norm
    progress.loss_window = []
    return line


def train(recipe: Recipe, overwrite: bool = False) -> dict:
    """Fit a reward model as the recipe says; write the output folder; return the summary.

    ``overwrite`` starts over in an output folder that holds checkpoints of an earlier run.
    """
    from accelerate.utils import DistributedType, set_seed
    from tqdm.auto import tqdm

    from rmkit.models.classifier import load_tokenizer
    from rmkit.training.reward_model import build_reward_model

    cfg = recipe.train
    output_dir = Path(cfg.output_dir)
    logs.log_to(output_dir)
    accelerator = make_accelerator(cfg)
    check_launch(accelerator)
    if overwrite and accelerator.is_main_process:
        shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
    accelerator.wait_for_everyone()
    tokenizer = load_tokenizer(recipe.model)
    recipe = fit_data_length(recipe, tokenizer)
    checkpoint = None if overwrite else find_resume_checkpoint(cfg.resume, output_dir)
    if checkpoint:
        check_same_settings(checkpoint, recipe)
    report = DataReport()
    with accelerator.main_process_first():  # the main process fills the hub cache first
        train_set, eval_set = load_datasets(recipe.data, tokenizer, report)
    accelerator.print(f"data: {report.summary()}; {len(train_set)} train / {len(eval_set)} eval pairs")
    for line in report.check("data.max_length", tokenizer.unk_token):
        logs.note(line, warning=True)
    accelerator.print(f"data files: {', '.join(report.files)}")

    set_seed(cfg.seed)
    model = build_reward_model(recipe.model, recipe.lora, tokenizer)
    memory = plan_memory(recipe, model, train_set, single_process=accelerator.distributed_type == DistributedType.NO)
    accelerator.print(memory_line(memory))
    train_loader, eval_loader = make_loaders(train_set, eval_set, tokenizer, cfg, accelerator.num_processes)
    steps_per_epoch, total_steps = count_steps(cfg, len(train_loader))
    optimizer, scheduler = make_optimizer(model, cfg, total_steps)
    tell_deepspeed(accelerator, cfg)
    model, optimizer, prepared_train, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)

    if checkpoint:
        progress = load_checkpoint(accelerator, checkpoint, total_steps)
        accelerator.print(f"resuming from {checkpoint} (step {progress.step} of {total_steps})")
    else:
        progress = Progress(total_steps=total_steps, fingerprint=fingerprint(recipe, TRAINING_SECTIONS))
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        dump_recipe(recipe, output_dir / "recipe.yaml")
    log = MetricsLog(accelerator, output_dir / "metrics.jsonl", progress.step if checkpoint else None)
    if cfg.report_to:
        accelerator.init_trackers("rmkit", config=tracker_config(recipe))

    model.train()
    bar = tqdm(total=total_steps, initial=progress.step, desc="train", disable=not accelerator.is_local_main_process)
    while progress.step < total_steps:
        for batch in epoch_loader(accelerator, train_loader, prepared_train, progress):
            started = time.perf_counter()
            group = accumulation_group_size(progress.batches_in_epoch, len(train_loader), cfg.gradient_accumulation_steps)
            loss, grad_norm = train_step(
                accelerator, model, optimizer, scheduler, batch, cfg, group, memory["tokens_per_backward"]
            )
            progress.train_seconds += time.perf_counter() - started
            record(accelerator, progress, loss, batch, len(train_loader), cfg.pad_to_multiple_of, memory["tokens_per_backward"])
            if not accelerator.sync_gradients:  # mid-accumulation
                continue
            progress.step += 1
            bar.update(1)
            if progress.step % cfg.logging_steps == 0 or progress.step == total_steps:
                line = log_line(progress, scheduler.get_last_lr()[0], grad_norm, steps_per_epoch)
                log.write(progress.step, line)
                bar.set_postfix(loss=f"{line['loss']:.4f}")
            if progress.step == total_steps:
                break
            if eval_loader is not None and cfg.eval_steps and progress.step % cfg.eval_steps == 0:
                log.write(progress.step, held_out_metrics(accelerator, model, eval_loader))
            if cfg.save_steps and progress.step % cfg.save_steps == 0:
                save_checkpoint(accelerator, output_dir, progress, cfg.save_total_limit)
    bar.close()

    final = held_out_metrics(accelerator, model, eval_loader) if eval_loader is not None else {}
    if final:
        log.write(progress.step, final)
    merge = save_outputs(accelerator, model, tokenizer, recipe)
    # Merging loads the base again: let go of the trained model first, so it is not held twice.
    accelerator.free_memory()
    del model, optimizer, scheduler, prepared_train
    gc.collect()  # PEFT's modules hold each other in cycles
    return_freed_memory()
    if merge:
        merge_outputs(tokenizer, recipe)
    summary = make_summary(progress, steps_per_epoch, final, report, len(train_set), len(eval_set))
    summary.update(
        memory, **peak_memory(), processes=accelerator.num_processes, distributed_type=accelerator.distributed_type.value
    )
    if accelerator.is_main_process:
        write_json(output_dir / "summary.json", summary)
        accelerator.print(json.dumps(final or {"steps": progress.step}))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def fit_data_length(recipe: Recipe, tokenizer) -> Recipe:
    """The recipe with ``data.max_length`` capped at what the model reads (:func:`rmkit.models.lengths.fit_length`):
    training and its held-out eval encode at the cap, and ``recipe.yaml`` records it."""
    from rmkit.models.lengths import fit_length, model_config

    config = model_config(recipe.model.name_or_path, recipe.model.trust_remote_code)
    length = fit_length(recipe.data.max_length, config, tokenizer, "data.max_length", recipe.model.name_or_path)
    return dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, max_length=length))


def save_outputs(accelerator, model, tokenizer, recipe: Recipe) -> bool:
    """``adapter/`` (LoRA) or ``model/`` from the (possibly sharded) model; every process must
    call this. Returns whether this process should then merge the adapter into ``model/``."""
    from rmkit.training.reward_model import is_lora, save_reward_model

    unwrapped = accelerator.unwrap_model(model)
    save_reward_model(
        unwrapped,
        tokenizer,
        recipe.train.output_dir,
        state_dict=accelerator.get_state_dict(model),
        is_main_process=accelerator.is_main_process,
        merge=False,
        trust_remote_code=recipe.model.trust_remote_code,
    )
    return recipe.train.merge and accelerator.is_main_process and is_lora(unwrapped)


def merge_outputs(tokenizer, recipe: Recipe) -> None:
    from rmkit.training.reward_model import merge_adapter

    merge_adapter(recipe.train.output_dir, tokenizer, recipe.model.dtype, recipe.model.trust_remote_code)


def make_summary(progress: Progress, steps_per_epoch: int, final: dict, report: DataReport, n_train: int, n_eval: int) -> dict:
    return {
        **final,
        "steps": progress.step,
        "epochs": progress.step / steps_per_epoch,
        "train_pairs": n_train,
        "eval_pairs": n_eval,
        "tokens": progress.tokens,
        "padded_tokens": progress.padded_tokens,
        "padding_efficiency": progress.tokens / max(progress.padded_tokens, 1),
        "train_seconds": progress.train_seconds,
        "tokens_per_second": progress.tokens / max(progress.train_seconds, 1e-9),
        "data": report.to_dict(),
    }
