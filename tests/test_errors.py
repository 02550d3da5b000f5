"""Every verb's bad input ends in one line, ``rmkit: error: ...``, naming the file or key, and exit code 2.

The matrix (:data:`CASES`) runs each bad input in process through :func:`rmkit.cli.main`,
by class: recipe faults, data faults, path faults and flag faults, across the verbs. Every
case fails before a model is loaded. Bad records that ``on_error: skip`` skips are counted
instead (:func:`test_skipped_records_are_counted_by_kind`). One case runs ``python -m
rmkit.train`` (what ``accelerate launch -m rmkit.train`` starts) as a real process.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from string import Template

import pytest

from rmkit.cli import main
from rmkit.config.recipe import dump_recipe
from rmkit.config.sections import Recipe
from rmkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PAIR = {"prompt": [{"role": "user", "content": "Hello!"}], "chosen": "Hi, how can I help?", "rejected": "Go away."}
QUESTION = {"question_id": 1, "category": "writing", "turns": ["Write a short poem about the sea."]}
LATIN1 = "caf\udce9"  # written as the lone byte 0xe9: not UTF-8


def pair(**fields) -> str:
    return json.dumps({**PAIR, **fields})


def prompt(*roles: str) -> list[dict]:
    return [{"role": role, "content": f"{role} turn"} for role in roles]


# Records that are each bad in one way, by the kind that on_error: skip counts them as.
BAD_RECORDS = {
    "encoding": f'{{"prompt": "{LATIN1}", "chosen": "a", "rejected": "b"}}',
    "invalid_json": '{"prompt": "Hi", "chosen": ',
    "type": "[1, 2, 3]",  # not an object
    "invalid": pair(prompt=[{"role": "wizard", "content": "Hi"}]),
    "order": pair(prompt=prompt("user", "user")),
    "missing": pair(prompt=[{"role": "user"}]),  # a message without content
    "identical": pair(rejected=PAIR["chosen"]),
    "empty": pair(chosen=" "),
}

RECIPES = {  # recipe files with one fault each
    "latin1.yaml": b"train:\n  output_dir: caf\xe9\n",
    "syntax.yaml": b"train:\n  max_steps: [1, 2\nsample:\n  n: 4\n",
    "python_tag.yaml": b"train: !!python/object/apply:os.system ['echo hi']\n",
    "control_character.yaml": b"train:\n  output_dir: a\x01b\n",
    "a_list.yaml": b"- train\n- sample\n",
    "a_word.yaml": b"train\n",
    "section_list.yaml": b"train:\n  - 1\n",
}


class Inputs:
    """Good and bad input files in one folder, recipes that use them, and a real scored run."""

    def __init__(self, root: Path, tiny_llama: Path):
        self.root, self.model = root, str(tiny_llama)
        for name, text in RECIPES.items():
            (root / name).write_bytes(text)
        self.pairs = self.write("pairs.jsonl", [json.dumps(PAIR)] * 8)
        self.bad_pairs = self.write("bad_pairs.jsonl", [json.dumps(PAIR), BAD_RECORDS["invalid_json"], json.dumps(PAIR)])
        for kind, record in BAD_RECORDS.items():  # the bad record on line 11, after ten good ones
            self.write(f"bad_{kind}.jsonl", [json.dumps(PAIR)] * 10 + [record])
        self.write("typed.jsonl", [pair(chosen=3)])
        self.empty = self.write("empty.jsonl", [])
        self.blank = self.write("blank.jsonl", ["", "   ", ""])
        self.write("huge_line.jsonl", [json.dumps(PAIR), '{"prompt": "' + "x" * 4_000_000])  # 4 MB, cut short
        self.write("huge_value.jsonl", [pair(prompt=[{"role": "x" * 1_000_000, "content": "Hi"}])])  # quoted in the message
        self.write("unknown_format.jsonl", [json.dumps({"foo": 1})])
        self.write("late_system.jsonl", [pair(prompt=prompt("user", "system"))])
        self.write("not_gzip.jsonl.gz", [json.dumps(PAIR)])
        self.write("not_parquet.parquet", ["not parquet"])
        self.write("pairs.csv", ["prompt,chosen,rejected"])
        self.prompts = self.write("prompts.jsonl", [json.dumps(QUESTION)])
        self.bad_prompts = self.write("bad_prompts.jsonl", [json.dumps(QUESTION), "[1, 2]"])
        self.write("latin1_prompts.jsonl", [json.dumps(QUESTION), f'{{"question_id": 2, "turns": ["{LATIN1}"]}}'])
        self.write("turns_text.jsonl", [json.dumps({**QUESTION, "turns": "Hi"})])
        self.write("duplicate_ids.jsonl", [json.dumps(QUESTION), json.dumps(QUESTION)])
        self.write("order_prompts.jsonl", [json.dumps({"id": "a", "messages": prompt("user", "assistant", "assistant", "user")})])
        self.outputs = self.write("outputs.json", [json.dumps([{"instruction": "Hi", "output": "Hello", "generator": "m"}])])
        self.reference = self.write("reference.json", [json.dumps([{"instruction": "Hi", "output": "Yo", "generator": "ref"}])])
        self.bad_outputs = self.write("bad_outputs.json", [json.dumps([{"instruction": "Hi", "generator": "m"}])])
        self.write("latin1_outputs.json", ["[", f'{{"instruction": "{LATIN1}", "output": "Hello", "generator": "m"}}', "]"])
        self.write("sft_order.jsonl", [json.dumps({"messages": prompt("user", "user", "assistant")})])
        self.write("sft_no_reply.jsonl", [json.dumps({"messages": prompt("user")})])
        self.write("sft_two_turns.jsonl", [json.dumps({"messages": prompt("user", "assistant", "user", "assistant")})])
        self.rewriting_policy(tiny_llama)
        self.file_model = self.write("model.bin", ["not a model"])
        (root / "not_a_run").mkdir()
        (root / "trained").mkdir()  # a training output whose metrics.jsonl is damaged in the middle
        (root / "trained" / "metrics.jsonl").write_text('{"step": 1, "loss": 0.7}\n{"step": 2, "lo\n{"step": 3, "loss": 0.6}\n')
        recipe = Recipe()
        recipe.model.name_or_path, recipe.data.path = self.model, str(self.pairs)
        recipe.train.output_dir = str(root / "rm")
        recipe.sample.prompts, recipe.sample.policy, recipe.sample.backend = str(self.prompts), self.model, "transformers"
        recipe.sample.output_dir, recipe.score.reward_model = str(root / "new_run"), self.model
        self.recipe = str(root / "recipe.yaml")
        dump_recipe(recipe, self.recipe)
        self.make_run(recipe)

    def make_run(self, recipe: Recipe) -> None:
        """A real scored run of the tiny model (its prompts file has bad lines, skipped and counted),
        and copies damaged in one way each."""
        prompt_lines = [json.dumps(QUESTION), "[1, 2]", json.dumps({"id": "o", "messages": prompt("user", "user")}), LATIN1]
        recipe.sample.prompts = self.write("run_prompts.jsonl", prompt_lines)
        recipe.sample.on_error, recipe.sample.n, recipe.sample.max_tokens = "skip", 2, 4
        recipe.sample.output_dir = str(self.root / "run")
        dump_recipe(recipe, self.root / "run_recipe.yaml")
        assert main(["sample-and-score", str(self.root / "run_recipe.yaml")]) == 0
        self.run = str(self.root / "run")
        shutil.copytree(self.run, self.root / "run_copy")
        shutil.copytree(self.run, self.root / "damaged_run")
        lines = (self.root / "run" / "candidates.jsonl").read_text().splitlines()
        (self.root / "damaged_run" / "candidates.jsonl").write_text(
            "\n".join([lines[0], '{"prompt_id": "1", "n"', *lines[1:]]) + "\n"
        )
        shutil.copytree(self.run, self.root / "damaged_state")
        (self.root / "damaged_state" / "run.json").write_text('{"fingerprint": ')

    def rewriting_policy(self, tiny_llama: Path) -> None:
        """A policy whose chat template rewrites earlier replies (as templates that drop past reasoning do)."""
        from transformers import AutoTokenizer

        shutil.copytree(tiny_llama, self.root / "rewriting_policy")
        tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
        tokenizer.chat_template = (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
            "{% if m['role'] == 'assistant' and not loop.last %}(an earlier reply){% else %}{{ m['content'] }}{% endif %}"
            "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        )
        tokenizer.save_pretrained(self.root / "rewriting_policy")

    def write(self, name: str, lines: list[str]) -> str:
        path = self.root / name
        path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape"))  # \udce9: a lone byte
        return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_llama) -> Inputs:
    return Inputs(tmp_path_factory.mktemp("bad_inputs"), tiny_llama)


# name: (verb, its arguments, what the one line must name). The arguments are split as a shell
# would; $model is the tiny model's folder; other names are files and folders of Inputs.root:
# recipe.yaml (tiny model, pairs.jsonl, prompts.jsonl, sample.output_dir new_run), run (a real
# scored run) and its copies, not_a_run (an empty folder), model.bin (a file).
CASES = {
    # --- recipe faults: encoding, syntax, tags, shape, types, ranges, unknown keys
    "train-recipe-not-utf8": ("train", "latin1.yaml", "recipe latin1.yaml, line 2: not UTF-8 text (byte 0xe9 at column 18)"),
    "config-recipe-not-utf8": ("config", "show latin1.yaml", "recipe latin1.yaml, line 2: not UTF-8"),
    "train-recipe-syntax": ("train", "syntax.yaml", "recipe syntax.yaml, line 3, column 7: not valid YAML"),
    "sample-and-score-recipe-syntax": ("sample-and-score", "syntax.yaml", "syntax.yaml, line 3"),
    "iterate-recipe-syntax": ("iterate", "syntax.yaml", "syntax.yaml, line 3"),
    "train-recipe-python-tag": ("train", "python_tag.yaml", "python_tag.yaml, line 1, column 8: not valid YAML"),
    "chat-recipe-python-tag": ("chat", "--recipe python_tag.yaml", "a recipe is plain YAML, without !!python"),
    "config-recipe-control-character": (
        "config",
        "show control_character.yaml",
        "control_character.yaml, line 2: not valid YAML",
    ),
    "train-recipe-a-list": ("train", "a_list.yaml", "recipe a_list.yaml: expected a mapping of sections"),
    "sample-recipe-a-word": ("sample", "a_word.yaml", "recipe a_word.yaml: expected a mapping of sections"),
    "config-section-a-list": ("config", "show section_list.yaml", "section_list.yaml: train: expected a mapping"),
    "train-recipe-a-folder": ("train", "not_a_run", "recipe not_a_run is a folder"),
    "train-missing-recipe": ("train", "nowhere.yaml", "recipe nowhere.yaml does not exist"),
    "iterate-missing-recipe": ("iterate", "nowhere.yaml", "recipe nowhere.yaml does not exist"),
    "chat-missing-recipe": ("chat", "--recipe nowhere.yaml", "recipe nowhere.yaml does not exist"),
    "train-unknown-key": ("train", "recipe.yaml train.bogus=1", "unknown key train.bogus in section 'train'; valid keys:"),
    "train-unknown-section": ("train", "recipe.yaml bogus.key=1", "unknown key bogus in the recipe"),
    "sample-and-score-unknown-key": ("sample-and-score", "recipe.yaml sample.bogus=1", "unknown key sample.bogus"),
    "config-unknown-key": ("config", "show recipe.yaml sample.bogus=1", "unknown key sample.bogus"),
    "chat-unknown-key": ("chat", "--model $model sample.bogus=1", "unknown key sample.bogus"),
    "train-wrong-type": ("train", "recipe.yaml train.max_steps=many", "train.max_steps: expected int"),
    "train-not-a-choice": ("train", "recipe.yaml train.lr_scheduler=fast", "train.lr_scheduler: expected one of"),
    "sample-not-a-list": ("sample", "recipe.yaml sample.stop=5", "sample.stop: expected a list"),
    "train-not-an-override": ("train", "recipe.yaml train.max_steps", "override 'train.max_steps' is not of the form"),
    "train-override-bad-yaml": ("train", "recipe.yaml train.max_steps=[1", "the value of train.max_steps is not valid YAML"),
    "train-negative-learning-rate": ("train", "recipe.yaml train.learning_rate=-1", "train.learning_rate must be above 0"),
    "train-nan-learning-rate": ("train", "recipe.yaml train.learning_rate=.nan", "train.learning_rate must be above 0, got nan"),
    "train-zero-max-steps": ("train", "recipe.yaml train.max_steps=0", "train.max_steps must be at least 1, got 0"),
    "train-zero-batch": ("train", "recipe.yaml train.per_device_batch_size=0", "train.per_device_batch_size must be at least 1"),
    "train-zero-epochs": ("train", "recipe.yaml train.num_epochs=0", "train.num_epochs must be above 0"),
    "train-warmup-above-1": ("train", "recipe.yaml train.warmup_ratio=2", "train.warmup_ratio must be in [0, 1]"),
    "train-eval-fraction-1": ("train", "recipe.yaml data.eval_fraction=1", "data.eval_fraction must be in [0, 1)"),
    "train-zero-max-length": ("train", "recipe.yaml data.max_length=0", "data.max_length must be at least 1"),
    "train-zero-lora-rank": ("train", "recipe.yaml lora.r=0", "lora.r must be at least 1"),
    "train-lora-dropout-1": ("train", "recipe.yaml lora.dropout=1", "lora.dropout must be in [0, 1)"),
    "sample-and-score-zero-n": ("sample-and-score", "recipe.yaml sample.n=0", "sample.n must be at least 1"),
    "sample-and-score-negative-temperature": (
        "sample-and-score",
        "recipe.yaml sample.temperature=-1",
        "sample.temperature must be at least 0",
    ),
    "sample-negative-category-temperature": (
        "sample",
        "recipe.yaml 'sample.category_temperature={writing: -0.5}'",
        "sample.category_temperature.writing must be at least 0",
    ),
    "sample-zero-max-tokens": ("sample", "recipe.yaml sample.max_tokens=0", "sample.max_tokens must be at least 1"),
    "sample-top-p-above-1": ("sample", "recipe.yaml sample.top_p=2", "sample.top_p must be in (0, 1]"),
    "sample-zero-chunk": ("sample", "recipe.yaml sample.chunk_size=0", "sample.chunk_size must be at least 1"),
    "sample-gpu-memory-above-1": (
        "sample",
        "recipe.yaml sample.gpu_memory_utilization=1.5",
        "sample.gpu_memory_utilization must be in (0, 1]",
    ),
    "score-zero-batch": ("score", "recipe.yaml score.batch_size=0", "score.batch_size must be at least 1"),
    "score-zero-max-length": ("score", "run score.max_length=0", "run/recipe.yaml: score.max_length must be at least 1"),
    "select-zero-top-k": ("select", "run select.top_k=0", "select.top_k must be at least 1"),
    "select-negative-min-margin": ("select", "recipe.yaml select.min_margin=-1", "select.min_margin must be at least 0"),
    "sft-zero-learning-rate": ("sft", "recipe.yaml sft.learning_rate=0", "sft.learning_rate must be above 0"),
    "sft-zero-batch": ("sft", "recipe.yaml sft.per_device_batch_size=0", "sft.per_device_batch_size must be at least 1"),
    "sft-zero-max-steps": ("sft", "run sft.max_steps=0", "sft.max_steps must be at least 1"),
    "iterate-zero-rounds": ("iterate", "recipe.yaml iterate.rounds=0", "iterate.rounds must be at least 1"),
    "chat-zero-max-tokens": ("chat", "--model $model sample.max_tokens=0", "sample.max_tokens must be at least 1"),
    # --- data faults: encoding, JSON, fields, types, roles, turn order, empty, huge lines, damaged files
    "train-data-not-utf8": (
        "train",
        "recipe.yaml data.path=bad_encoding.jsonl",
        "bad_encoding.jsonl:11: not UTF-8 text (byte 0xe9",
    ),
    "eval-data-not-utf8": ("eval", "$model bad_encoding.jsonl", "bad_encoding.jsonl:11: not UTF-8"),
    "sample-and-score-prompts-not-utf8": (
        "sample-and-score",
        "recipe.yaml sample.prompts=latin1_prompts.jsonl",
        "latin1_prompts.jsonl:2: not UTF-8",
    ),
    "leaderboard-outputs-not-utf8": (
        "leaderboard",
        "latin1_outputs.json --reference reference.json --reward-model $model",
        "latin1_outputs.json:2: not UTF-8",
    ),
    "train-invalid-json": ("train", "recipe.yaml data.path=bad_pairs.jsonl", "bad_pairs.jsonl:2: invalid JSON"),
    "eval-invalid-json": ("eval", "$model bad_invalid_json.jsonl", "bad_invalid_json.jsonl:11: invalid JSON"),
    "train-record-not-an-object": (
        "train",
        "recipe.yaml data.path=bad_type.jsonl",
        "bad_type.jsonl:11: expected a JSON object, got list",
    ),
    "sample-and-score-prompt-not-an-object": (
        "sample-and-score",
        "recipe.yaml sample.prompts=bad_prompts.jsonl",
        "bad_prompts.jsonl:2",
    ),
    "train-wrong-field-type": (
        "train",
        "recipe.yaml data.path=typed.jsonl",
        "typed.jsonl:1, field 'chosen': expected str or list",
    ),
    "eval-undetectable-format": ("eval", "$model unknown_format.jsonl", "unknown_format.jsonl:1: cannot detect the pair format"),
    "train-unknown-role": ("train", "recipe.yaml data.path=bad_invalid.jsonl", "bad_invalid.jsonl:11, field 'prompt[0].role'"),
    "train-turns-out-of-order": (
        "train",
        "recipe.yaml data.path=bad_order.jsonl",
        "bad_order.jsonl:11, field 'prompt[1]': two user turns",
    ),
    "sample-prompt-turns-out-of-order": (
        "sample",
        "recipe.yaml sample.prompts=order_prompts.jsonl",
        "order_prompts.jsonl:1, field 'messages[2]'",
    ),
    "sft-turns-out-of-order": ("sft", "recipe.yaml sft.data=sft_order.jsonl", "sft_order.jsonl:1, field 'messages[1]'"),
    "sft-no-reply": ("sft", "recipe.yaml sft.data=sft_no_reply.jsonl", "sft_no_reply.jsonl:1, field 'messages'"),
    "sft-template-rewrites-earlier-replies": (
        "sft",
        "recipe.yaml sft.data=sft_two_turns.jsonl sample.policy=rewriting_policy",
        "sample.chat_template: the policy's chat template does not render each reply after the conversation before it",
    ),
    "eval-message-without-content": ("eval", "$model bad_missing.jsonl", "bad_missing.jsonl:11, field 'prompt[0].content'"),
    "eval-identical-replies": ("eval", "$model bad_identical.jsonl", "bad_identical.jsonl:11, field 'rejected'"),
    "train-empty-reply": ("train", "recipe.yaml data.path=bad_empty.jsonl", "bad_empty.jsonl:11, field 'chosen'"),
    "train-late-system": ("train", "recipe.yaml data.path=late_system.jsonl", "late_system.jsonl:1, field 'prompt[1]'"),
    "sample-prompt-turns-not-a-list": (
        "sample",
        "recipe.yaml sample.prompts=turns_text.jsonl",
        "turns_text.jsonl:1, field 'turns'",
    ),
    "sample-duplicate-prompt-ids": (
        "sample",
        "recipe.yaml sample.prompts=duplicate_ids.jsonl",
        "duplicate_ids.jsonl:2, field 'id'",
    ),
    "leaderboard-output-without-text": (
        "leaderboard",
        "bad_outputs.json --reference reference.json --reward-model $model",
        "bad_outputs.json:#0, field 'output'",
    ),
    "eval-empty-data": ("eval", "$model empty.jsonl", "empty.jsonl: no pairs in it"),
    "train-no-data": ("train", "recipe.yaml data.path=blank.jsonl", "data.path blank.jsonl: no training pairs left"),
    "sample-and-score-no-prompts": (
        "sample-and-score",
        "recipe.yaml sample.prompts=blank.jsonl",
        "sample.prompts blank.jsonl: no prompts",
    ),
    "train-nothing-fits": ("train", "recipe.yaml data.max_length=4", "raise data.max_length"),
    "train-huge-line": ("train", "recipe.yaml data.path=huge_line.jsonl", "huge_line.jsonl:2: invalid JSON"),
    "eval-huge-value": ("eval", "$model huge_value.jsonl", "huge_value.jsonl:1, field 'prompt[0].role'"),
    "train-not-gzip": ("train", "recipe.yaml data.path=not_gzip.jsonl.gz", "not_gzip.jsonl.gz: not a readable gzip file"),
    "eval-not-parquet": ("eval", "$model not_parquet.parquet", "not_parquet.parquet: not a readable parquet file"),
    "train-unsupported-file-type": ("train", "recipe.yaml data.path=pairs.csv", "unsupported file type: pairs.csv"),
    "select-damaged-candidates": ("select", "damaged_run", "damaged_run/candidates.jsonl:2: damaged line"),
    "score-damaged-run-state": ("score", "damaged_state", "damaged_state/run.json is damaged"),
    "report-damaged-metrics": ("report", "trained", "trained/metrics.jsonl:2: damaged line"),
    "ui-damaged-run": ("ui", "damaged_run --no-chat", "damaged_run is malformed"),
    # --- path faults: missing, a file for a folder, a folder for a file, not a model, not a run
    "train-missing-data": ("train", "recipe.yaml data.path=nowhere.jsonl", "no such file: nowhere.jsonl"),
    "train-data-glob-matches-nothing": (
        "train",
        "recipe.yaml 'data.path=nowhere/*.jsonl'",
        "no data files match nowhere/*.jsonl",
    ),
    "eval-data-neither-local-nor-hub": (
        "eval",
        "$model no-such-org/no-such-pairs",
        "'no-such-org/no-such-pairs' is neither a local file, folder or glob nor",
    ),
    "eval-missing-data": ("eval", "$model nowhere.jsonl", "no such file: nowhere.jsonl"),
    "sample-and-score-missing-prompts": (
        "sample-and-score",
        "recipe.yaml sample.prompts=nowhere.jsonl",
        "no such file: nowhere.jsonl",
    ),
    "leaderboard-missing-outputs": (
        "leaderboard",
        "nowhere.json --reference reference.json --reward-model $model",
        "nowhere.json",
    ),
    "sft-missing-data": ("sft", "recipe.yaml sft.data=nowhere.jsonl", "nowhere.jsonl does not exist"),
    "train-missing-model": (
        "train",
        "recipe.yaml model.name_or_path=/nowhere/model",
        "model.name_or_path /nowhere/model: no such folder",
    ),
    "eval-missing-reward-model": ("eval", "/nowhere/rm pairs.jsonl", "reward model /nowhere/rm: no such folder"),
    "sample-and-score-missing-policy": ("sample-and-score", "recipe.yaml sample.policy=/nowhere/p", "sample.policy /nowhere/p"),
    "sample-and-score-missing-reward-model": (
        "sample-and-score",
        "recipe.yaml score.reward_model=/nowhere/rm",
        "score.reward_model /nowhere/rm",
    ),
    "sample-and-score-no-reward-model": ("sample-and-score", "recipe.yaml score.reward_model=", "score.reward_model is not set"),
    "leaderboard-missing-reward-model": (
        "leaderboard",
        "outputs.json --reference reference.json --reward-model /nowhere/rm",
        "--reward-model /nowhere/rm: no such folder",
    ),
    "chat-missing-model": ("chat", "--model /nowhere/p", "--model /nowhere/p: no such folder"),
    "chat-missing-reward-model": ("chat", "--model $model --reward-model /nowhere/rm", "--reward-model /nowhere/rm"),
    "report-missing-folder": ("report", "/nowhere/run", "/nowhere/run"),
    "ui-missing-run": ("ui", "/nowhere/run", "/nowhere/run: no such folder"),
    "train-model-is-a-file": (
        "train",
        "recipe.yaml model.name_or_path=model.bin",
        "model.name_or_path model.bin: a file, not a model folder",
    ),
    "eval-reward-model-is-a-file": ("eval", "model.bin pairs.jsonl", "reward model model.bin: a file, not a model folder"),
    "sample-and-score-policy-is-a-file": (
        "sample-and-score",
        "recipe.yaml sample.policy=model.bin",
        "sample.policy model.bin: a file",
    ),
    "chat-model-is-a-file": ("chat", "--model model.bin", "--model model.bin: a file"),
    "leaderboard-reward-model-is-a-file": (
        "leaderboard",
        "outputs.json --reference reference.json --reward-model model.bin",
        "--reward-model model.bin: a file",
    ),
    "report-run-is-a-file": ("report", "model.bin", "model.bin: no candidates.jsonl"),
    "merge-shard-is-a-file": ("merge", "merged model.bin", "model.bin is not a run folder"),
    "train-data-folder-without-data": ("train", "recipe.yaml data.path=not_a_run", "no data files"),
    "sft-data-folder-without-sft-data": ("sft", "recipe.yaml sft.data=not_a_run", "not_a_run/sft.jsonl does not exist"),
    "train-model-not-a-model": (
        "train",
        "recipe.yaml model.name_or_path=not_a_run",
        "model.name_or_path not_a_run: not a model folder",
    ),
    "eval-reward-model-not-a-model": ("eval", "not_a_run pairs.jsonl", "reward model not_a_run: not a model folder"),
    "sample-policy-not-a-model": ("sample", "recipe.yaml sample.policy=not_a_run", "sample.policy not_a_run: not a model folder"),
    "eval-heldout-of-no-training-run": ("eval", "$model --heldout", "--heldout needs an rmkit training run"),
    "score-not-a-run": ("score", "not_a_run", "not_a_run is not a run folder (no recipe.yaml)"),
    "score-no-run-yet": ("score", "recipe.yaml sample.output_dir=never", "never is not a run folder yet"),
    "select-not-a-run": ("select", "not_a_run", "not_a_run is not a run folder (no recipe.yaml)"),
    "merge-not-a-run": ("merge", "merged not_a_run", "not_a_run is not a run folder"),
    "merge-not-a-shard": ("merge", "merged run", "run is not a shard"),
    "compare-not-a-run": ("compare", "not_a_run run", "not_a_run is not a sampling run folder"),
    "report-not-a-run": ("report", "not_a_run", "not_a_run: no candidates.jsonl"),
    "ui-not-a-run": ("ui", "not_a_run --no-chat", "not_a_run is not a sample-and-score run"),
    "score-changed-settings": ("score", "run sample.n=8", "run was sampled with other settings: sample.n: 2 -> 8"),
    # --- flag faults: ranges, shards, choices, options that do not go together
    "eval-zero-batch-size": (
        "eval",
        "$model pairs.jsonl --batch-size 0",
        "argument --batch-size: score.batch_size must be at least 1",
    ),
    "eval-batch-size-not-a-number": ("eval", "$model pairs.jsonl --batch-size two", "argument --batch-size: invalid int value"),
    "eval-zero-max-length": (
        "eval",
        "$model pairs.jsonl --max-length 0",
        "argument --max-length: score.max_length must be at least 1",
    ),
    "eval-negative-max-pairs": (
        "eval",
        "$model pairs.jsonl --max-pairs -1",
        "argument --max-pairs: expected a whole number of at least 1",
    ),
    "eval-unknown-format": ("eval", "$model pairs.jsonl --format csv", "argument --format: invalid choice: 'csv'"),
    "eval-data-and-heldout": ("eval", "$model pairs.jsonl --heldout", "give either DATA or --heldout"),
    "eval-no-data": ("eval", "$model", "give either DATA or --heldout"),
    "leaderboard-zero-batch-size": (
        "leaderboard",
        "outputs.json --reference reference.json --reward-model $model --batch-size 0",
        "argument --batch-size",
    ),
    "sample-and-score-shard-out-of-range": ("sample-and-score", "recipe.yaml --shard 3/2", "--shard '3/2': need 0 <= i < n"),
    "sample-and-score-shard-of-none": ("sample-and-score", "recipe.yaml --shard 0/0", "--shard '0/0': need 0 <= i < n"),
    "sample-shard-negative": ("sample", "recipe.yaml --shard=-1/2", "--shard '-1/2': need 0 <= i < n"),
    "sample-shard-not-a-fraction": ("sample", "recipe.yaml --shard two", "--shard 'two': expected i/n"),
    "sample-output-with-a-run": ("sample", "run_copy --output elsewhere", "--output goes with a recipe"),
    "chat-zero-n": ("chat", "--model $model --reward-model $model --n 0", "argument --n: expected a whole number of at least 1"),
    "chat-n-not-a-number": ("chat", "--model $model --n many", "argument --n: expected a whole number"),
    "iterate-zero-rounds-flag": ("iterate", "recipe.yaml --rounds 0", "iterate.rounds must be at least 1"),
    "compare-one-run": ("compare", "run run", "needs two runs or more"),
    "compare-reference-not-compared": (
        "compare",
        "run run_copy --reference other",
        "--reference other is not one of the compared runs",
    ),
    "compare-unknown-scorer": ("compare", "run run_copy --scorer gold", "no reply has scorer 'gold'"),
    "config-two-recipes": ("config", "show recipe.yaml a_list.yaml", "one recipe at most"),
    "config-unknown-action": ("config", "edit", "argument action: invalid choice: 'edit'"),
    "ui-host-without-auth": ("ui", "--host 0.0.0.0 --no-chat", "--host 0.0.0.0 serves the app beyond this machine"),
    "ui-auth-without-password": ("ui", "--auth admin --no-chat", "--auth: expected USER:PASSWORD"),
    # --- rmkit serve: each fails before a model loads or a port is bound
    "serve-missing-recipe": ("serve", "nowhere.yaml", "recipe nowhere.yaml does not exist"),
    "serve-unknown-key": ("serve", "recipe.yaml serve.bogus=1", "unknown key serve.bogus in section 'serve'"),
    "serve-negative-wait": ("serve", "recipe.yaml serve.max_batch_wait=-1", "serve.max_batch_wait must be at least 0, got -1"),
    "serve-no-scorer": ("serve", "recipe.yaml score.reward_model=", "score.reward_model is not set"),
    "serve-host-without-api-key": ("serve", "recipe.yaml --host 0.0.0.0", "--host 0.0.0.0 serves rewards beyond this machine"),
    "serve-port-out-of-range": (
        "serve",
        "recipe.yaml --port 70000",
        "argument --port: expected a port from 0 to 65535, got '70000'",
    ),
    "serve-negative-port": ("serve", "recipe.yaml --port=-5", "argument --port: expected a port from 0 to 65535, got '-5'"),
}


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rmkit: error: "), err
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_code_2(case, inputs, capsys, monkeypatch):
    monkeypatch.chdir(inputs.root)  # relative names ("nowhere.jsonl") are looked up there
    monkeypatch.delenv("RMKIT_DEBUG", raising=False)
    verb, arguments, named = CASES[case]
    overwrite = ["--overwrite"] if verb in ("sample-and-score", "sample") else []  # each case starts its run afresh
    try:
        code = main([verb, *shlex.split(Template(arguments).substitute(model=inputs.model)), *overwrite])
    except SystemExit as exit:  # argparse's own errors (a flag out of range) end in parsing
        code = exit.code
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and named in line, line
    assert len(line) < 2100  # a huge value in the input is cut short, not printed whole


def test_the_matrix_reaches_every_verb():
    from rmkit.cli import VERBS

    assert len(CASES) >= 50
    assert {verb for verb, _, _ in CASES.values()} == set(VERBS) - {"models"}  # `rmkit models` reads no input


def test_skipped_records_are_counted_by_kind(inputs, capsys, monkeypatch):
    """With on_error: skip each bad record is skipped and counted by its kind; a huge reply that
    fits no max_length is dropped and counted; the good pairs are scored."""
    monkeypatch.chdir(inputs.root)
    huge = pair(chosen="The sea is blue and wide. " * 10_000)  # a 260 kB line
    data = inputs.write("mixed.jsonl", [json.dumps(PAIR)] * 3 + list(BAD_RECORDS.values()) + [huge, json.dumps(PAIR)])
    assert main(["eval", inputs.model, data, "--on-error", "skip", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    report = result["data_report"]
    assert report["skipped"] == {kind: 1 for kind in BAD_RECORDS}
    assert report["dropped"] == {"reply_too_long": 1}
    assert (report["read"], report["kept"], result["overall"]["pairs"]) == (4 + len(BAD_RECORDS) + 1, 4, 4)


def test_bad_prompts_skipped_by_a_run_are_counted(inputs):
    """The run the matrix uses read a prompts file with three bad lines and sample.on_error: skip."""
    state = json.loads((Path(inputs.run) / "run.json").read_text())
    assert state["prompts"]["file"]["skipped"] == {"type": 1, "order": 1, "encoding": 1}
    assert state["prompts"]["total"] == 1


def test_a_bad_record_says_how_to_skip_it(inputs, capsys):
    assert main(["train", inputs.recipe, f"data.path={inputs.bad_pairs}"]) == 2
    assert "data.on_error=skip" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("error", [MemoryError(), "torch"])
def test_out_of_memory_names_the_settings_to_lower(error, inputs, capsys, monkeypatch):
    import torch

    if error == "torch":
        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def train(recipe, overwrite=False):
        raise error

    monkeypatch.setattr("rmkit.train.train", train)  # the command's own name for it
    assert main(["train", inputs.recipe]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "out of memory" in line and "train.per_device_batch_size" in line


def test_a_missing_optional_package_is_named(inputs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails as if it were not installed
    assert main(["chat", "--model", inputs.model, "--backend", "vllm"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "sample.backend=vllm needs vLLM" in line and "pip install" in line
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["ui", "--model", "/nowhere/p"]) == 2  # before any model is looked for
    assert "rmkit ui needs gradio: pip install" in one_error_line(capsys.readouterr().err)


def test_a_bug_keeps_its_traceback(inputs, monkeypatch):
    def broken(run_dir):
        return 1 / 0

    monkeypatch.setattr("rmkit.reports.run_report.write_report", broken)
    with pytest.raises(ZeroDivisionError):
        main(["report", str(inputs.root)])


def test_debug_shows_the_traceback_of_a_user_error(inputs, monkeypatch):
    with pytest.raises(ConfigError, match="train.bogus"):
        main(["--debug", "train", inputs.recipe, "train.bogus=1"])
    with pytest.raises(ConfigError, match="train.bogus"):
        main(["train", inputs.recipe, "train.bogus=1", "--debug"])  # after the verb too
    monkeypatch.setenv("RMKIT_DEBUG", "1")
    with pytest.raises(ConfigError, match="train.bogus"):
        main(["train", inputs.recipe, "train.bogus=1"])


def test_python_m_rmkit_train_goes_through_the_same_boundary(inputs):
    """`accelerate launch -m rmkit.train` runs `python -m rmkit.train` in each process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("RMKIT_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "rmkit.train", inputs.recipe, f"data.path={inputs.bad_pairs}"],
        capture_output=True, text=True, env=env, cwd=inputs.root, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "bad_pairs.jsonl:2" in one_error_line(result.stderr)
