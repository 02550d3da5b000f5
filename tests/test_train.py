"""The training loop end to end, on the tiny Llama and a learnable synthetic preference task."""

import json
import math
import os
import random
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import rmkit.train
import rmkit.training.trainer
from rmkit.config.recipe import dump_recipe, load_recipe
from rmkit.config.sections import TrainConfig
from rmkit.conversation import RecordError
from rmkit.data.batching import LengthGroupedBatchSampler
from rmkit.data.collator import RewardDataCollatorWithPadding
from rmkit.data.encode import encode_pairs
from rmkit.data.formats import load_pairs
from rmkit.data.loaders import FullBatches
from rmkit.data.sources import split_heldout
from rmkit.errors import ConfigError
from rmkit.evaluation.evaluate import pairwise_metrics
from rmkit.models.classifier import compute_rewards, load_tokenizer
from rmkit.scoring.reward_models import load_trained_reward_model
from rmkit.training.checkpoints import Progress, checkpoint_dirs, save_checkpoint
from rmkit.training.metrics_log import MetricsLog
from rmkit.training.reward_loss import bradley_terry_loss, pair_metrics, pair_rewards, training_loss
from rmkit.training.reward_model import build_reward_model
from rmkit.training.trainer import accumulation_group_size, train, train_step
from tests.conftest import REPO
from tests.fakes import final_eval, recipe_for, synthetic_pairs, write_jsonl


def read_metrics(output_dir) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> str:
    return write_jsonl(tmp_path_factory.mktemp("data") / "pairs.jsonl", synthetic_pairs(200))


@pytest.fixture(scope="module")
def trained(tiny_llama, pairs, tmp_path_factory):
    """One LoRA run of 2 epochs, evaluated and checkpointed every 10 steps."""
    output_dir = tmp_path_factory.mktemp("trained")
    recipe = recipe_for(tiny_llama, pairs, output_dir, "train.num_epochs=2", "train.eval_steps=10", "train.save_steps=10")
    return recipe, train(recipe), output_dir


# ----------------------------------------------------------------------------- pure parts


def test_bradley_terry_loss_margin_and_centering():
    chosen, rejected, margin = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.0])
    expected = -(torch.sigmoid(torch.tensor([0.5, -1.0]))).log().mean()
    torch.testing.assert_close(bradley_terry_loss(chosen, rejected, margin), expected)
    centered = training_loss(chosen, rejected, margin, center_rewards_coefficient=0.1)
    torch.testing.assert_close(centered, expected + 0.1 * torch.tensor([9.0, 1.0]).mean())


def test_pair_metrics_count_ties_as_half():
    metrics = pair_metrics(torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.0, 2.0, 1.0]))
    assert metrics["eval_accuracy"] == pytest.approx(0.5)
    assert metrics["eval_margin"] == pytest.approx(0.0)
    assert metrics["eval_reward_mean"] == pytest.approx(1.0)


def test_training_and_rmkit_eval_measure_the_reward_spread_alike():
    """Training's eval_reward_std was torch's sample std (n - 1), rmkit eval's the population one."""
    chosen, rejected = [1.0, 2.0, 0.0], [0.0, 2.0, 1.0]
    metrics = pair_metrics(torch.tensor(chosen), torch.tensor(rejected))
    spread = math.sqrt(sum((r - 1.0) ** 2 for r in chosen + rejected) / 6)  # mean 1, over all six rewards
    assert metrics["eval_reward_std"] == pytest.approx(spread)
    assert pairwise_metrics(chosen, rejected, ["a"] * 3)["overall"]["reward_spread"] == pytest.approx(spread)


def test_full_batches_are_full_and_cover_every_example():
    lengths = [random.Random(i).randint(5, 50) for i in range(23)]
    batches = FullBatches(LengthGroupedBatchSampler(lengths, batch_size=4, seed=1, mega_batch_factor=2))
    epochs = []
    for epoch in (0, 1):
        batches.epoch = epoch
        epochs.append(list(batches))
        assert len(epochs[-1]) == len(batches) == 6 and all(len(batch) == 4 for batch in epochs[-1])
        assert set().union(*map(set, epochs[-1])) == set(range(23))
    assert epochs[0] != epochs[1]


class LinearRewards(torch.nn.Module):
    """A reward that is a sum of per-token weights: gradients computable by hand."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(8, 1)

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=(self.embed(input_ids)[..., 0] * attention_mask).sum(-1, keepdim=True))


def test_a_short_last_accumulation_group_weighs_as_much_as_a_full_one():
    """3 micro-batches a step, 4 an epoch: each step's gradient is the mean over its own micro-batches."""
    from accelerate import Accelerator

    assert [accumulation_group_size(i, 4, 3) for i in range(4)] == [3, 3, 3, 1]
    assert [accumulation_group_size(i, 6, 3) for i in range(6)] == [3] * 6
    torch.manual_seed(0)
    examples = [
        {"input_ids_chosen": [random.Random(i).randrange(8) for _ in range(3)], "input_ids_rejected": [i % 8]} for i in range(8)
    ]
    batches = [RewardDataCollatorWithPadding(0)(examples[i : i + 2]) for i in range(0, 8, 2)]

    def mean_gradient(model, group):
        model.zero_grad()
        sum(training_loss(*pair_rewards(model, batch)) for batch in group).backward()
        return model.embed.weight.grad / len(group)

    model, reference = LinearRewards(), LinearRewards()
    reference.load_state_dict(model.state_dict())
    cfg = TrainConfig(gradient_accumulation_steps=3, max_grad_norm=0.0)
    accelerator = Accelerator(gradient_accumulation_steps=3, cpu=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # an update is minus the gradient
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    weights = [model.embed.weight.detach().clone()]
    for i, batch in enumerate(loader):
        train_step(accelerator, model, optimizer, scheduler, batch, cfg, accumulation_group_size(i, 4, 3))
        if accelerator.sync_gradients:
            weights.append(model.embed.weight.detach().clone())
    assert len(weights) == 3
    torch.testing.assert_close(weights[0] - weights[1], mean_gradient(reference, batches[:3]))
    reference.load_state_dict({"embed.weight": weights[1]})
    torch.testing.assert_close(weights[1] - weights[2], mean_gradient(reference, batches[3:]))


class MainProcess:
    """Enough of an Accelerator for the checkpoint and log helpers: the one process."""

    is_main_process = True

    def save_state(self, path):
        os.makedirs(path, exist_ok=True)

    def wait_for_everyone(self):
        pass

    def log(self, metrics, step):
        pass


def test_a_torn_metrics_tail_does_not_block_resuming(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5, "loss": 0.7}\n{"step": 10, "loss": 0.6}\n{"step": 15, "lo')  # killed mid-line
    MetricsLog(MainProcess(), path, resume_step=10).write(15, {"loss": 0.5})
    assert read_metrics(tmp_path) == [{"step": 5, "loss": 0.7}, {"step": 10, "loss": 0.6}, {"step": 15, "loss": 0.5}]
    path.write_text('{"step": 5, "lo\n{"step": 10, "loss": 0.6}\n')  # damage with lines after it: not an interruption
    with pytest.raises(RecordError, match=r"metrics\.jsonl:1: damaged line"):
        MetricsLog(MainProcess(), path, resume_step=10)


def test_a_checkpoint_cut_short_while_writing_its_state_is_ignored(tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise Interrupted

    monkeypatch.setattr(os, "replace", killed)  # the state file is written whole, or not at all
    with pytest.raises(Interrupted):
        save_checkpoint(MainProcess(), tmp_path, Progress(step=4), keep=2)
    monkeypatch.undo()
    assert checkpoint_dirs(tmp_path) == [] and not (tmp_path / "checkpoints" / "step-4" / "rmkit_state.json").exists()
    save_checkpoint(MainProcess(), tmp_path, Progress(step=4), keep=2)
    assert checkpoint_dirs(tmp_path) == [tmp_path / "checkpoints" / "step-4"]


# ----------------------------------------------------------------------------- one trained run


def test_learns_a_learnable_preference(trained):
    _, summary, output_dir = trained
    losses = [line["loss"] for line in read_metrics(output_dir) if "loss" in line]
    assert losses[0] > 0.5 and losses[-1] < 0.5 * losses[0]
    assert summary["eval_accuracy"] >= 0.8 and summary["eval_margin"] > 0
    evals = [line["step"] for line in read_metrics(output_dir) if "eval_loss" in line]
    assert summary["steps"] == 44 and evals == [10, 20, 30, 40, 44]  # 22 batches x 2 epochs
    assert summary["train_pairs"] == 170 and summary["eval_pairs"] == 30 and summary["data"]["read"] == 200
    assert summary["tokens"] > 0 and 0.5 < summary["padding_efficiency"] <= 1
    assert summary["tokens_per_second"] > 0


def test_output_folder(trained):
    recipe, summary, output_dir = trained
    names = {p.name for p in output_dir.iterdir()}
    assert {"adapter", "model", "metrics.jsonl", "summary.json", "recipe.yaml", "checkpoints"} <= names
    assert json.loads((output_dir / "summary.json").read_text()) == summary
    assert load_recipe(output_dir / "recipe.yaml") == recipe
    assert sorted(p.name for p in (output_dir / "checkpoints").iterdir()) == ["step-30", "step-40"]  # save_total_limit 2
    # a regression score, so vLLM's pooling runner returns the raw logit (tests/test_serve.py runs it)
    assert json.loads((output_dir / "model" / "config.json").read_text())["problem_type"] == "regression"


def test_saved_model_reproduces_the_final_eval(trained):
    """``model/`` loaded by plain transformers scores the held-out split as the trained model did."""
    recipe, summary, output_dir = trained
    model = AutoModelForSequenceClassification.from_pretrained(output_dir / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(output_dir / "model")
    _, heldout = split_heldout(load_pairs(recipe.data.path), recipe.data.eval_fraction, recipe.data.seed)
    examples = encode_pairs(tokenizer, heldout, recipe.data.max_length)

    def rewards(key, scorer):  # one reply at a time: no padding at all
        rows = [torch.tensor([e[key]]) for e in examples]
        with torch.no_grad():
            return torch.cat([compute_rewards(scorer, ids, torch.ones_like(ids)) for ids in rows])

    chosen, rejected = rewards("input_ids_chosen", model), rewards("input_ids_rejected", model)
    assert pair_metrics(chosen, rejected) == pytest.approx(final_eval(summary), abs=1e-5)
    adapter_model, _ = load_trained_reward_model(str(output_dir / "adapter"))
    torch.testing.assert_close(rewards("input_ids_chosen", adapter_model), chosen, atol=1e-5, rtol=0)


def test_score_head_is_trained_and_saved_in_the_adapter(trained):
    from accelerate.utils import set_seed

    recipe, _, output_dir = trained
    set_seed(recipe.train.seed)  # as train() does: the same fresh head
    initial = build_reward_model(recipe.model, recipe.lora, load_tokenizer(recipe.model))
    initial_head = initial.base_model.model.score.original_module.weight
    saved_head = load_file(output_dir / "adapter" / "adapter_model.safetensors")["base_model.model.score.weight"]
    merged_head = load_file(output_dir / "model" / "model.safetensors")["score.weight"]
    assert (saved_head - initial_head).abs().max() > 1e-3
    torch.testing.assert_close(merged_head, saved_head)


# ----------------------------------------------------------------------------- resume, processes, data, CLI


class Interrupted(Exception):
    pass


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one state a process, mixed precision included: start and leave this test with none."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])
def test_resume_continues_exactly(tiny_llama, pairs, tmp_path, monkeypatch, mixed_precision, fresh_accelerator_state):
    """Killed after its second checkpoint (mid-epoch) and resumed: the run ends as an uninterrupted one
    (in bf16 too, where the frozen weights are stored in bf16 while training)."""
    overrides = [
        f"train.mixed_precision={mixed_precision}",
        "data.max_examples=63",
        "train.num_epochs=2",
        "train.per_device_batch_size=6",  # 11 batches per epoch ...
        "train.gradient_accumulation_steps=2",  # ... 6 steps, the last one short
        "train.save_steps=4",  # the second checkpoint, at step 8, is 2 steps (4 batches) into epoch 1
        "lora.dropout=0.1",  # the dropout RNG must be restored too
    ]
    uninterrupted = train(recipe_for(tiny_llama, pairs, tmp_path / "a", *overrides))

    real_save = rmkit.training.trainer.save_checkpoint
    saved = []

    def save_then_die(*args, **kwargs):
        saved.append(real_save(*args, **kwargs))
        if len(saved) == 2:
            raise Interrupted

    monkeypatch.setattr(rmkit.training.trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        train(recipe_for(tiny_llama, pairs, tmp_path / "b", *overrides))
    monkeypatch.undo()
    assert saved[-1].name == "step-8"
    resumed = train(recipe_for(tiny_llama, pairs, tmp_path / "b", *overrides))

    assert final_eval(resumed) == pytest.approx(final_eval(uninterrupted), rel=1e-6)
    lines_a, lines_b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert len(lines_a) == len(lines_b) and all(b == pytest.approx(a, rel=1e-6) for a, b in zip(lines_a, lines_b))
    weights_a = load_file(tmp_path / "a" / "model" / "model.safetensors")
    weights_b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    assert max((weights_a[k] - weights_b[k]).abs().max().item() for k in weights_a) < 1e-6
    assert resumed["tokens"] == uninterrupted["tokens"] and resumed["steps"] == 12
    assert resumed["frozen_weights_dtype"] == {"no": "as loaded", "bf16": "bfloat16"}[mixed_precision]
    assert all(w.dtype == torch.float32 for w in weights_b.values())  # model/ is rebuilt from the float32 base


@pytest.mark.slow
def test_rerun_with_a_changed_recipe_is_refused_unless_overwrite(tiny_llama, pairs, tmp_path):
    short = ["data.max_examples=24", "train.max_steps=2", "train.save_steps=1"]
    train(recipe_for(tiny_llama, pairs, tmp_path, *short))
    assert train(recipe_for(tiny_llama, pairs, tmp_path, *short, "train.logging_steps=1"))["steps"] == 2  # log only: resumes
    recipe_text = (tmp_path / "recipe.yaml").read_text()
    changed = recipe_for(tiny_llama, pairs, tmp_path, *short, "train.learning_rate=1e-5", "data.seed=7")
    with pytest.raises(
        ConfigError,
        match=(
            r"^\S+step-1 was trained with other settings: data\.seed: 42 -> 7; train\.learning_rate: 0\.002 -> 1e-05; "
            r"rerun with --overwrite to start over, or choose another train\.output_dir$"
        ),
    ):
        train(changed)
    assert (tmp_path / "recipe.yaml").read_text() == recipe_text  # untouched
    dump_recipe(changed, tmp_path / "changed.yaml")
    assert rmkit.train.main([str(tmp_path / "changed.yaml"), "--overwrite"]) == 0
    assert load_recipe(tmp_path / "recipe.yaml") == changed
    assert [line["step"] for line in read_metrics(tmp_path)] == [2, 2]  # a log of the new run only: loss, then eval


@pytest.mark.slow
def test_two_processes_match_one(tiny_llama, pairs, tmp_path):
    """DDP on 2 CPU processes (gloo) with half the per-device batch = one process, same global batch."""
    overrides = ["train.num_epochs=1", "train.gradient_accumulation_steps=2", "lora.dropout=0.0"]
    one = train(recipe_for(tiny_llama, pairs, tmp_path / "one", *overrides))
    # Half the per-device batches; 30 held-out pairs in global batches of 8 leave a remainder of 6.
    halves = ["train.per_device_batch_size=4", "train.eval_batch_size=4"]
    recipe = recipe_for(tiny_llama, pairs, tmp_path / "two", *overrides, *halves)
    dump_recipe(recipe, tmp_path / "two.yaml")
    # `--cpu --num_processes 2` would start one process: Accelerate needs the CPU asked for in the environment.
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    result = subprocess.run(
        [
            *launch,
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "rmkit.train",
            str(tmp_path / "two.yaml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["steps"] == one["steps"] == 11 and two["eval_pairs"] == one["eval_pairs"] == 30
    assert final_eval(two) == pytest.approx(final_eval(one), abs=1e-4)
    assert [m["loss"] for m in read_metrics(tmp_path / "two") if "loss" in m] == pytest.approx(
        [m["loss"] for m in read_metrics(tmp_path / "one") if "loss" in m], abs=1e-4
    )


def test_too_long_pairs_are_dropped_and_counted(tiny_llama, tmp_path, capsys):
    records = synthetic_pairs(40, seed=1)
    for record in records[:7]:
        record["chosen"] = " ".join(["the sea is wide"] * 30)  # ~120 tokens: no room in 64
    data = write_jsonl(tmp_path / "long.jsonl", records)
    summary = train(recipe_for(tiny_llama, data, tmp_path / "out", "data.eval_fraction=0", "train.max_steps=2"))
    assert summary["data"]["dropped"] == {"reply_too_long": 7}
    assert summary["data"]["kept"] == summary["train_pairs"] == 33 and summary["eval_pairs"] == 0
    assert "eval_loss" not in summary
    assert "dropped 7 (reply_too_long: 7)" in capsys.readouterr().out


def test_command_line_overrides(tiny_llama, pairs, tmp_path):
    dump_recipe(recipe_for(tiny_llama, pairs, tmp_path / "out", "train.max_steps=50"), tmp_path / "recipe.yaml")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rmkit.train",
            str(tmp_path / "recipe.yaml"),
            "train.max_steps=3",
            "train.report_to=[tensorboard]",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["steps"] == 3
    assert load_recipe(tmp_path / "out" / "recipe.yaml").train.max_steps == 3
    assert list((tmp_path / "out" / "runs" / "rmkit").glob("events.out.tfevents.*"))  # TensorBoard


def test_tiny_recipe_trains_the_encoder(tmp_path):
    from rmkit.models.builtin import ModelNotAvailable, resolve_model

    try:
        resolve_model("minilm")
    except ModelNotAvailable as err:
        pytest.skip(str(err))
    overrides = [f"train.output_dir={tmp_path}", "train.max_steps=2", "data.max_examples=16", "data.max_length=128"]
    recipe = load_recipe(REPO / "recipes" / "tiny.yaml", overrides)
    recipe.data.path = str(REPO / recipe.data.path)
    summary = train(recipe)
    assert summary["steps"] == 2 and summary["eval_pairs"] == 16
    model, tokenizer = load_trained_reward_model(str(tmp_path))
    assert type(model).__name__ == "BertForSequenceClassification" and tokenizer.eos_token == "[SEP]"


class FakeModel(torch.nn.Module):
    """What plan_memory reads: a config's width and depth, the weights' bytes, and the switch."""

    def __init__(self, hidden: int, layers: int, weight_floats: int):
        super().__init__()
        self.config = SimpleNamespace(hidden_size=hidden, num_hidden_layers=layers)
        self.weight = torch.nn.Parameter(torch.zeros(weight_floats))
        self.checkpointing = False

    def gradient_checkpointing_enable(self, **_):
        self.checkpointing = True


def memory_plan(batch_size=8, pair_length=100, single_process=True, **settings):
    model = FakeModel(hidden=8, layers=2, weight_floats=136_000)  # 544 bytes a token; weights 544,000 bytes: 1,000 tokens
    overrides = [f"train.per_device_batch_size={batch_size}"] + [f"{k.replace('__', '.')}={v}" for k, v in settings.items()]
    examples = [{"input_ids_chosen": [1] * pair_length, "input_ids_rejected": [1] * (pair_length // 2)}] * 3
    plan = rmkit.training.memory.plan_memory(load_recipe(None, overrides), model, examples, single_process)
    assert plan["gradient_checkpointing"] == model.checkpointing  # what it says is what the model does
    return plan


def test_auto_memory_splits_a_batch_into_runs_instead_of_checkpointing():
    small = memory_plan(batch_size=4)  # 4 pairs x 200 tokens: the whole batch fits the weights' size
    assert small["tokens_per_backward"] is None and not small["gradient_checkpointing"]
    big = memory_plan(batch_size=64)  # 12,800 tokens: runs of the weights' size, no recomputation
    assert big["tokens_per_backward"] == 1000 and not big["gradient_checkpointing"]
    assert "1,000 tokens" in rmkit.training.memory.memory_line(big)
    long = memory_plan(batch_size=64, pair_length=600)  # one pair (1,200 tokens) outweighs the weights
    assert long["gradient_checkpointing"] and "1,200 tokens" in long["gradient_checkpointing_why"]


def test_memory_plan_follows_the_recipe_and_never_splits_across_processes():
    assert memory_plan(batch_size=64, train__tokens_per_backward=300)["tokens_per_backward"] == 300
    whole = memory_plan(batch_size=64, train__tokens_per_backward="null")
    assert whole["tokens_per_backward"] is None and whole["gradient_checkpointing"]  # 12,800 tokens at once: checkpoint
    assert not memory_plan(batch_size=64, train__tokens_per_backward="null", model__gradient_checkpointing="false")[
        "gradient_checkpointing"
    ]
    distributed = memory_plan(batch_size=64, single_process=False)
    assert distributed["tokens_per_backward"] is None and distributed["gradient_checkpointing"]
    assert memory_plan(train__mixed_precision="bf16")["frozen_weights_dtype"] == "bfloat16"
    assert memory_plan(train__mixed_precision="bf16", single_process=False)["frozen_weights_dtype"] == "as loaded"
    with pytest.raises(ConfigError, match="tokens_per_backward"):
        load_recipe(None, ["train.tokens_per_backward=0"])


def test_the_trained_model_is_released_before_the_merge_loads_the_base_again(tiny_llama, pairs, tmp_path, monkeypatch):
    """The merge reloads the base: the trained model must be gone by then, or memory holds two."""
    import weakref

    import rmkit.training.reward_model

    built, seen_at_merge = [], []
    real_build, real_merge = rmkit.training.reward_model.build_reward_model, rmkit.training.trainer.merge_outputs

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        built.append(weakref.ref(model))
        return model

    def merge(*args, **kwargs):
        seen_at_merge.append(built[0]())
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(rmkit.training.reward_model, "build_reward_model", build)
    monkeypatch.setattr(rmkit.training.trainer, "merge_outputs", merge)
    train(recipe_for(tiny_llama, pairs, tmp_path, "train.max_steps=2"))
    assert len(built) == 1 and seen_at_merge == [None]
    assert (tmp_path / "model" / "model.safetensors").exists()
