"""``rmkit sft RUN_OR_RECIPE [section.key=value ...]``: fine-tune the policy on a run's kept data.

Rejection-sampling fine-tuning in one tool (RAFT, ReST): ``rmkit sample-and-score`` keeps
the best of N in ``sft.jsonl``; this fits the policy to it with TRL's ``SFTTrainer`` and
writes a merged model to ``sft.output_dir`` that ``sample.policy`` accepts, for the next
round. LoRA (the ``lora`` section) by default, merged at the end; ``sft.use_lora=false``
trains every weight.

The loss is on assistant turns only. Each conversation is rendered with the policy's chat
template (or ``sample.chat_template`` when it has none), and the characters each
assistant message adds after its generation prompt, through the end-of-turn token, are
marked as the ``assistant_masks`` column TRL turns into labels. This works with any
prefix-preserving template, where TRL's own ``assistant_only_loss`` needs a template with
``{% generation %}`` markers, which SmolLM2's lacks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rmkit.atomic_files import write_json
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import Recipe
from rmkit.conversation import Conversation, validate_conversation
from rmkit.errors import ConfigError, DataError, MissingPath, RecordError


def assistant_spans(tokenizer, messages: Conversation) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant replies."""
    from rmkit.data.templates import render

    text = render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before, through = render(tokenizer, messages[:i], add_generation_prompt=True), render(tokenizer, messages[: i + 1])
        if not (through.startswith(before) and text.startswith(through)):
            raise ConfigError(
                "sample.chat_template: the policy's chat template does not render each reply after the conversation before it "
                "(it rewrites earlier turns), so the replies to learn cannot be marked; train with a registry template "
                "instead: sample.chat_template=chatml sample.force_chat_template=true (or llama-3, vicuna, plain)"
            )
        spans.append((len(before), len(through)))
    return text, spans


def encode_sft(tokenizer, messages: Conversation, max_length: int) -> dict:
    """``input_ids`` and ``assistant_masks`` (1 on assistant tokens), cut at ``max_length``."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    masks = [int(any(start <= begin < end for start, end in spans)) for begin, _ in encoded["offset_mapping"]]
    return {"input_ids": encoded["input_ids"][:max_length], "assistant_masks": masks[:max_length]}


def read_sft(path: Path) -> list[Conversation]:
    """The conversations of an ``sft.jsonl`` ({"messages": [...]} per line)."""
    from rmkit.data.sources import read_records

    conversations = []
    for record, source in read_records(str(path), split=None):
        messages = validate_conversation(record.get("messages"), source=source)
        if messages[-1]["role"] != "assistant":
            raise RecordError("the conversation does not end with an assistant reply", source=source, field="messages")
        conversations.append(messages)
    if not conversations:
        raise DataError(f"{path} holds no conversations")
    return conversations


def data_path(recipe: Recipe, run_folder: Path | None) -> Path:
    """``sft.data`` (a file or a run folder), else the run named on the command line, else sample.output_dir."""
    path = Path(recipe.sft.data) if recipe.sft.data else run_folder or Path(recipe.sample.output_dir)
    path = path / "sft.jsonl" if path.is_dir() or not path.suffix else path  # a run folder, made or not
    if not path.exists():
        raise MissingPath(f"{path} does not exist: run `rmkit sample-and-score` first, or set sft.data=PATH")
    return path


def train_sft(recipe: Recipe, data: Path) -> Path:
    """Fit the policy to ``data``; write the merged model and tokenizer to ``sft.output_dir``."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from rmkit.data.templates import use_template
    from rmkit.logs import quiet_datasets
    from rmkit.models.builtin import resolve_model
    from rmkit.models.lengths import fit_length, model_config

    quiet_datasets()
    cfg, out = recipe.sft, Path(recipe.sft.output_dir)
    policy = resolve_model(cfg.policy or recipe.sample.policy)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    use_template(tokenizer, recipe.sample.chat_template, recipe.sample.force_chat_template)
    max_length = fit_length(cfg.max_length, model_config(policy), tokenizer, "sft.max_length", cfg.policy or recipe.sample.policy)
    rows = [encode_sft(tokenizer, messages, max_length) for messages in read_sft(data)]
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32)
    peft_config = None
    if cfg.use_lora:
        from peft import LoraConfig

        lora = recipe.lora
        peft_config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules, task_type="CAUSAL_LM"
        )
    trainer = SFTTrainer(
        model=model,
        args=sft_arguments(recipe, max_length),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    try:
        result = trainer.train()
    finally:  # accelerate keeps the trainer's precision process-wide; a later Accelerator (rmkit train) may want another
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    model = trainer.model.merge_and_unload() if cfg.use_lora else trainer.model
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {
        "data": str(data),
        "conversations": len(rows),
        "policy": policy,
        "use_lora": cfg.use_lora,
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "log": [entry for entry in trainer.state.log_history if "loss" in entry],
    }
    write_json(out / "sft_summary.json", summary)
    return out


def sft_arguments(recipe: Recipe, max_length: int):
    """TRL's ``SFTConfig`` for the recipe's ``sft`` section (``max_length``: sft.max_length, capped at the policy's positions)."""
    import torch
    from trl import SFTConfig

    cfg = recipe.sft
    return SFTConfig(
        output_dir=str(Path(cfg.output_dir) / "trainer"),
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a fraction of the steps
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        max_length=max_length,
        bf16=cfg.mixed_precision == "bf16",
        fp16=cfg.mixed_precision == "fp16",
        use_cpu=not torch.cuda.is_available(),  # transformers refuses bf16 on a CPU unless told it is one
        gradient_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        save_strategy="no",
        report_to=[],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="RUN_OR_RECIPE", help="a sampling run folder (its recipe.yaml and sft.jsonl), or a recipe"
    )
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides, e.g. sft.max_steps=50")


def run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    run_folder = target if target.is_dir() else None
    recipe = load_recipe(target / "recipe.yaml" if run_folder else target, args.overrides)
    out = train_sft(recipe, data_path(recipe, run_folder))
    print(f"rmkit: wrote the fine-tuned policy to {out} (use it as sample.policy={out})")
    return 0
