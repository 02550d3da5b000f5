"""Stand-ins that several test files share: a policy backend without a model, and a small
synthetic preference task that a tiny reward model learns in seconds."""

from __future__ import annotations

import json
import random

from rmkit.config.recipe import load_recipe
from rmkit.sampling.backends import Completion


class FakeBackend:
    """Replies ``s<seed + k>``; records every call."""

    max_model_len = 1024

    def __init__(self):
        self.calls = []

    def generate(self, prompts, params, n):
        self.calls.append((prompts, params, n))
        return [[Completion(f"s{p.seed + k}", 3, "stop") for k in range(n)] for p in params]


# Chosen replies carry a polite word, rejected ones a rude one; the rest is shared filler.
QUESTIONS = ["What is the capital of France?", "Tell me a story.", "Write a short poem about the sea.", "How are you?"]
GOOD = ["good", "great", "thanks", "please", "yes"]
BAD = ["bad", "terrible", "no", "never", "sorry"]
FILLER = ["the cat", "a blue bird", "one two three", "the house", "red green", "the sea is wide", "a small robot"]
EVAL_KEYS = ["eval_loss", "eval_accuracy", "eval_margin", "eval_reward_mean", "eval_reward_std"]

# Small and fast: 170 train / 30 held-out pairs of ~40 tokens.
BASE = [
    "data.eval_fraction=0.15",
    "data.max_length=64",
    "lora.r=8",
    "train.learning_rate=2e-3",
    "train.warmup_ratio=0.1",
    "train.per_device_batch_size=8",
    "train.eval_batch_size=8",
    "train.logging_steps=5",
]


def synthetic_pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def reply(words):
        parts = [rng.choice(FILLER) for _ in range(rng.randint(1, 3))]
        parts.insert(rng.randint(0, len(parts)), rng.choice(words))
        return " ".join(parts)

    return [{"prompt": rng.choice(QUESTIONS), "chosen": reply(GOOD), "rejected": reply(BAD)} for _ in range(n)]


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def recipe_for(model, data, output_dir, *overrides):
    paths = [f"model.name_or_path={model}", f"data.path={data}", f"train.output_dir={output_dir}"]
    return load_recipe(None, [*paths, *BASE, *overrides])


def final_eval(summary: dict) -> dict:
    """A training summary's held-out metrics."""
    return {key: summary[key] for key in EVAL_KEYS}
