"""Same seed, same candidates, after an interruption too.

Per-request seeds never depend on the batch, but the numbers an engine computes do: measured on
vLLM (SmolLM2-135M, bf16, CPU), 12 of 48 candidates changed when a chunk's prompts were sampled
in two halves instead of together, and 2 of 48 when the same chunk ran again with its prompts'
prefixes cached (docs/sampling_at_scale.md). A resumed run once re-chunked what was left, and its
engine started with an empty cache where the uninterrupted run's had the earlier chunks', so
its candidates differed. The backend here behaves as those engines do, deterministically: a
reply depends on its seed, on the other prompts of the call, and on whether an earlier call
since the cache was last emptied left prompts cached.
"""

import hashlib
import json
import shutil

import pytest

from rmkit.config.recipe import load_recipe
from rmkit.sampling.backends import Completion
from rmkit.sampling.pipeline import sample_and_score

N, PROMPTS, CHUNK = 2, 5, 2


class BatchSensitive:
    """Completion ``k`` of a request names its seed + k, the call's prompts and the cache state."""

    max_model_len = 1024

    def __init__(self):
        self.cached, self.calls = False, []

    def forget_cached_prompts(self) -> None:
        self.cached = False

    def generate(self, prompts, params, n):
        self.calls.append(len(prompts))
        batch = hashlib.blake2b(json.dumps(sorted(prompts)).encode(), digest_size=3).hexdigest()
        cache = "warm" if self.cached else "cold"
        self.cached = True
        return [[Completion(f"seed {p.seed + k} batch {batch} {cache}", 3, "stop") for k in range(n)] for p in params]


def reply_length(record, messages):
    return float(len(messages[-1]["content"]))


@pytest.fixture
def recipe(tiny_llama, tmp_path):
    prompts = tmp_path / "question.jsonl"
    records = [{"question_id": i, "category": "writing", "turns": [f"Tell me a story {i}.", "And then?"]} for i in range(PROMPTS)]
    prompts.write_text("".join(json.dumps(record) + "\n" for record in records))
    return load_recipe(None, [
        f"sample.prompts={prompts}", f"sample.policy={tiny_llama}", f"sample.n={N}", f"sample.chunk_size={CHUNK}",
        "score.scorers=[{name: length, function: 'tests.test_resume_same_candidates:reply_length'}]",
    ])  # fmt: skip


def candidates(run) -> list[dict]:
    return sorted((json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()),
                  key=lambda line: (line["order"], line["index"]))  # fmt: skip


@pytest.mark.parametrize("kept_prompts", [CHUNK, 1], ids=["killed after its first chunk", "killed while writing its first chunk"])
def test_a_resumed_run_samples_what_an_uninterrupted_one_does(recipe, tmp_path, kept_prompts):
    whole = tmp_path / "whole"
    sample_and_score(recipe, whole, backend=BatchSensitive())
    # The interrupted run: the first prompts' lines as the uninterrupted run wrote them, then a torn line.
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    lines = (resumed / "candidates.jsonl").read_text().splitlines(keepends=True)
    (resumed / "candidates.jsonl").write_text("".join(lines[: kept_prompts * N]) + lines[kept_prompts * N][:30])
    for name in ("sft.jsonl", "pairs.jsonl", "stats.json"):
        (resumed / name).unlink()
    again = BatchSensitive()  # a new process: a new engine, its cache empty
    sample_and_score(recipe, resumed, backend=again)

    assert candidates(resumed) == candidates(whole)
    assert (resumed / "sft.jsonl").read_text() == (whole / "sft.jsonl").read_text()
    # Per chunk left, turn 1 (a request per prompt) and turn 2 (one per trajectory); a chunk cut short is sampled again whole.
    chunks_left = [CHUNK, 1] if kept_prompts == CHUNK else [CHUNK, CHUNK, 1]
    assert again.calls == [size * per for size in chunks_left for per in (1, N)]
