import pytest

from rmkit.config.recipe import load_recipe, parse_override
from rmkit.config.sections import Recipe
from rmkit.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_recipe_sections_load_into_dataclasses(tmp_path):
    recipe = load_recipe(write(tmp_path, "model:\n  name_or_path: m\ntrain:\n  learning_rate: 0.001\n  max_steps: 5\n"))
    assert isinstance(recipe, Recipe)
    assert recipe.model.name_or_path == "m"
    assert recipe.train.learning_rate == 0.001 and recipe.train.max_steps == 5
    assert recipe.data.max_length == 512  # defaults kept


def test_overrides_parse_yaml_values_and_short_floats(tmp_path):
    recipe = load_recipe(
        write(tmp_path, "train:\n  max_steps: 5\n"),
        ["train.learning_rate=3e-4", "train.max_steps=7", "lora.enabled=false", "lora.target_modules=[q_proj,v_proj]"],
    )
    assert recipe.train.learning_rate == pytest.approx(3e-4)
    assert recipe.train.max_steps == 7
    assert recipe.lora.enabled is False
    assert recipe.lora.target_modules == ["q_proj", "v_proj"]


def test_a_literal_word_yaml_reads_as_a_boolean_is_the_word(tmp_path):
    """YAML 1.1 reads `no` as false: `mixed_precision: no` failed with "expected one of ['no', ...], got False"."""
    assert load_recipe(write(tmp_path, "train:\n  mixed_precision: no\n")).train.mixed_precision == "no"
    assert load_recipe(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match=r"train\.mixed_precision: expected one of"):
        load_recipe(None, ["train.mixed_precision=yes"])  # a boolean word the key does not take is still refused
    assert load_recipe(None, ["model.gradient_checkpointing=no"]).model.gradient_checkpointing is False  # bool keys stay bool


def test_int_accepted_for_float_but_not_bool_for_int(tmp_path):
    assert load_recipe(None, ["train.learning_rate=1"]).train.learning_rate == 1.0
    with pytest.raises(ConfigError, match=r"train\.max_steps"):
        load_recipe(None, ["train.max_steps=true"])


def test_unknown_key_names_it_and_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_recipe(write(tmp_path, "train:\n  learnin_rate: 0.1\n"))
    message = str(err.value)
    assert "recipe.yaml" in message and "train.learnin_rate" in message and "learning_rate" in message


def test_unknown_section_and_wrong_type_and_bad_literal(tmp_path):
    with pytest.raises(ConfigError, match="unknown key trian"):
        load_recipe(None, ["trian.max_steps=3"])
    with pytest.raises(ConfigError, match=r"data\.max_length: expected int"):
        load_recipe(None, ["data.max_length=long"])
    with pytest.raises(ConfigError, match=r"data\.on_error: expected one of \['raise', 'skip'\]"):
        load_recipe(None, ["data.on_error=ignore"])


def test_override_without_equals_is_refused():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.max_steps")


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_short_floats_in_a_recipe_file_are_numbers_as_on_the_command_line(tmp_path):
    # YAML 1.1 reads 3e-4 (no dot) as a string; a float key takes it as the number it is.
    text = "train:\n  learning_rate: 3e-4\n  weight_decay: '1E-2'\n  center_rewards_coefficient: 1e-3\n"
    recipe = load_recipe(write(tmp_path, text), ["data.eval_fraction=5e-2"])
    assert recipe.train.learning_rate == 3e-4 and recipe.train.weight_decay == 0.01
    assert recipe.train.center_rewards_coefficient == 1e-3 and recipe.data.eval_fraction == 0.05
    assert load_recipe(write(tmp_path, "sample:\n  category_temperature: {writing: 7e-1}\n")).sample.category_temperature == {
        "writing": 0.7
    }
    assert load_recipe(None, ["model.name_or_path=1e5"]).model.name_or_path == "1e5"  # a text key keeps the text
    with pytest.raises(ConfigError, match=r"train\.learning_rate: expected float, got 'fast'"):
        load_recipe(write(tmp_path, "train:\n  learning_rate: fast\n"))


@pytest.mark.parametrize("key", ["logging_steps", "per_device_batch_size", "eval_batch_size", "gradient_accumulation_steps"])
def test_counts_that_divide_must_be_at_least_one(key):
    with pytest.raises(ConfigError, match=rf"^recipe: train\.{key} must be at least 1, got 0$"):
        load_recipe(None, [f"train.{key}=0"])


# A value out of range for every numeric key that has a range; the keys without one are listed below.
OUT_OF_RANGE = {
    "data.eval_fraction": 1,
    "data.max_length": 0,
    "data.max_examples": 0,
    "lora.r": 0,
    "lora.alpha": 0,
    "lora.dropout": 1,
    "train.per_device_batch_size": 0,
    "train.eval_batch_size": 0,
    "train.gradient_accumulation_steps": 0,
    "train.learning_rate": 0,
    "train.weight_decay": -0.1,
    "train.warmup_ratio": 1.5,
    "train.num_epochs": 0,
    "train.max_steps": 0,
    "train.max_grad_norm": -1,
    "train.center_rewards_coefficient": -0.01,
    "train.tokens_per_backward": 0,
    "train.pad_to_multiple_of": 0,
    "train.eval_steps": 0,
    "train.save_steps": 0,
    "train.save_total_limit": -1,
    "train.logging_steps": 0,
    "sample.max_prompts": 0,
    "sample.n": 0,
    "sample.temperature": -0.1,
    "sample.top_p": 0,
    "sample.top_k": -1,
    "sample.min_p": 1.5,
    "sample.max_tokens": 0,
    "sample.repetition_penalty": 0,
    "sample.presence_penalty": 2.5,
    "sample.frequency_penalty": -3,
    "sample.chunk_size": 0,
    "sample.workers": 0,
    "sample.batch_size": 0,
    "sample.max_model_len": 0,
    "sample.tensor_parallel_size": 0,
    "sample.data_parallel_size": 0,
    "sample.gpu_memory_utilization": 0,
    "score.verifier_workers": -1,
    "score.max_length": 0,
    "score.batch_size": 0,
    "score.gpu_memory_utilization": 1.5,
    "select.top_k": 0,
    "select.min_margin": -1,
    "sft.max_length": 0,
    "sft.per_device_batch_size": 0,
    "sft.gradient_accumulation_steps": 0,
    "sft.learning_rate": -1e-4,
    "sft.warmup_ratio": 2,
    "sft.num_epochs": 0,
    "sft.max_steps": 0,
    "sft.logging_steps": 0,
    "iterate.rounds": 0,
    "serve.max_batch_wait": -0.5,
    "serve.max_batch_conversations": 0,
    "serve.max_request_bytes": 0,
    "serve.max_conversations": 0,
}
UNBOUNDED = {"data.seed", "train.seed", "sample.seed", "select.seed", "select.min_reward", "sft.seed"}  # any number will do


def numeric_keys() -> list[str]:
    """``section.key`` of every recipe setting that takes a number."""
    import dataclasses
    import types
    import typing

    from rmkit.config.command_line import SECTIONS

    keys = []
    for section, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[field.name]
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)  # int | None, not list[int]
            if hint in (int, float) or union and {int, float} & set(typing.get_args(hint)):
                keys.append(f"{section}.{field.name}")
    return keys


def test_every_numeric_key_has_a_range_or_is_listed_as_unbounded():
    assert set(numeric_keys()) == set(OUT_OF_RANGE) | UNBOUNDED
    load_recipe(None)  # the defaults are in range


@pytest.mark.parametrize("key", OUT_OF_RANGE)
def test_a_number_out_of_range_names_its_key(key):
    with pytest.raises(ConfigError, match=rf"^recipe: {key} must be (at least|above|in) .*, got {OUT_OF_RANGE[key]}"):
        load_recipe(None, [f"{key}={OUT_OF_RANGE[key]}"])


def test_a_bad_category_temperature_and_nan_are_refused():
    with pytest.raises(ConfigError, match=r"sample\.category_temperature\.math must be at least 0, got -1"):
        load_recipe(None, ["sample.category_temperature={math: -1}"])
    with pytest.raises(ConfigError, match=r"train\.learning_rate must be above 0, got nan"):
        load_recipe(None, ["train.learning_rate=.nan"])


# A recipe file with one fault each, and the start of the one line that names it.
BAD_RECIPE_FILES = [
    (b"train:\n  output_dir: caf\xe9\n", r"recipe .*recipe\.yaml, line 2: not UTF-8 text \(byte 0xe9 at column 18\)"),
    (
        b"train:\n  max_steps: [1, 2\nsample:\n  n: 4\n",
        r"recipe .*, line 3, column 7: not valid YAML: expected ',' or '\]', but got ':' "
        r"\(while parsing a flow sequence at line 2, column 14\)",
    ),
    (
        b"train: !!python/object/apply:os.system ['echo hi']\n",
        r"recipe .*, line 1, column 8: not valid YAML: could not determine a "
        r"constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'; a recipe is plain YAML, without !!python",
    ),
    (b"sample:\n  n: 4\n  stop: [\x00]\n", r"recipe .*, line 3: not valid YAML: unacceptable character #x0000"),
    (b"- train\n", r"recipe .*: expected a mapping of sections \(train:, sample:, ...\), got a list"),
    (b"train:\n  - 1\n", r".*recipe\.yaml: train: expected a mapping, got \[1\]"),
]


@pytest.mark.parametrize("text, message", BAD_RECIPE_FILES)
def test_a_bad_recipe_file_is_named_with_its_line(tmp_path, text, message):
    path = tmp_path / "recipe.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_recipe(path)


def test_a_folder_or_a_bad_override_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder: give the recipe's YAML file"):
        load_recipe(tmp_path)
    with pytest.raises(ConfigError, match=r"override 'train\.max_steps=\[1': the value of train\.max_steps is not valid YAML"):
        load_recipe(None, ["train.max_steps=[1"])


# ----------------------------------------------------------------------------- the recipe on the command line


def parse(verb, argv):
    from rmkit.cli import parse_args

    return parse_args([verb, *argv])


def test_scoring_flags_default_to_the_recipe_then_score_config(tmp_path):
    from rmkit.config.command_line import recipe_from_args, split_overrides
    from rmkit.config.sections import ScoreConfig

    for verb, argv in [("eval", ["RM", "pairs.jsonl"]), ("leaderboard", ["out.json", "--reference", "ref.json"])]:
        args = parse(verb, argv)
        assert recipe_from_args(args, overrides=[]).score == ScoreConfig()  # one place for every default
    recipe = write(tmp_path, "score:\n  max_length: 512\n  batch_size: 3\n")
    args = parse("eval", ["RM", "pairs.jsonl", "score.batch_size=5", "--recipe", str(recipe), "--dtype", "bfloat16"])
    data, overrides = split_overrides(args.data)
    score = recipe_from_args(args, ("score.batch_size", "score.max_length", "score.dtype"), overrides).score
    assert data == ["pairs.jsonl"] and (score.max_length, score.batch_size, score.dtype) == (512, 5, "bfloat16")
    args = parse("eval", ["RM", "pairs.jsonl", "score.batch_size=5", "--recipe", str(recipe), "--batch-size", "7"])
    assert recipe_from_args(args, ("score.batch_size",), split_overrides(args.data)[1]).score.batch_size == 7  # a flag wins
    args = parse("eval", ["RM", "--heldout", "--recipe", str(recipe), "score.batch_size=5", "score.dtype=float16"])
    assert args.data == [] and args.overrides == ["score.batch_size=5", "score.dtype=float16"]  # after an option too
    assert recipe_from_args(args).score.batch_size == 5
    args = parse("chat", ["--n", "2", "sample.temperature=0.2"])
    assert args.overrides == ["sample.temperature=0.2"]
    with pytest.raises(SystemExit):  # what is not an override stays argparse's error
        parse("eval", ["RM", "--heldout", "stray"])


def test_evals_data_flags_are_the_data_sections_keys(tmp_path):
    """--format, --split and --on-error stand for data.format, data.split and data.on_error: the overrides
    of those keys reach rmkit eval too (they were ignored), and eval reads the test split unless told."""
    from rmkit.config.command_line import recipe_from_args, split_overrides
    from rmkit.evaluation.evaluate import DATA_FLAGS, SCORE_FLAGS

    def data_of(*argv):
        args = parse("eval", ["RM", "pairs.jsonl", *argv])
        data = recipe_from_args(args, DATA_FLAGS + SCORE_FLAGS, split_overrides(args.data)[1]).data
        return data.format, data.split, data.on_error

    assert data_of() == ("auto", "test", "raise")
    assert data_of("data.format=trl", "data.split=validation", "data.on_error=skip") == ("trl", "validation", "skip")
    assert data_of("--format", "sharegpt", "--split", "dev", "--on-error", "skip") == ("sharegpt", "dev", "skip")
    assert data_of("--recipe", str(write(tmp_path, "data:\n  split: train\n"))) == ("auto", "train", "raise")
    with pytest.raises(SystemExit):
        data_of("--format", "csv")  # the key's own choices


def test_field_help_reaches_the_verbs_help(capsys):
    from rmkit.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "tokens per scored conversation; oldest turns are dropped first; capped at what the reward model reads; "
        "recipe key score.max_length (default: 2048)"
    ) in text


def every_key():
    """(section.key, its help) of every recipe key, score.scorers' entries included."""
    import dataclasses

    from rmkit.config.sections import SECTIONS, ScorerSpec

    classes = {**SECTIONS, "score.scorers[]": ScorerSpec}
    return [
        (f"{section}.{key.name}", key.metadata.get("help")) for section, cls in classes.items() for key in dataclasses.fields(cls)
    ]


def test_every_key_has_help():
    keys = every_key()
    assert len(keys) > 110
    assert [key for key, text in keys if not text or len(text) < 15] == []


def test_config_show_and_the_verbs_flags_print_each_keys_help(capsys):
    from rmkit.cli import build_parser, main
    from rmkit.evaluation.evaluate import SCORE_FLAGS

    assert main(["config", "show"]) == 0
    shown, section = {}, None
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith(" "):
            section = line.split(":")[0]
        else:
            name, _, comment = line.strip().partition(": ")
            shown[f"{section}.{name}"] = comment.split("  # ", 1)[1]
    assert shown == {key: text for key, text in every_key() if not key.startswith("score.scorers[]")}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for key in SCORE_FLAGS:
        help_text = dict(every_key())[key]
        assert f"{help_text}; recipe key {key} (default:" in text


def test_the_keys_a_run_resumes_across_are_those_that_change_no_result():
    """What a fingerprint leaves out: a change of these keys resumes a run or checkpoint, any other is refused."""
    from rmkit.config.fingerprint import FINGERPRINTED, neutral_keys

    assert {section: neutral_keys(section) for section in FINGERPRINTED} == {
        "model": {"trust_remote_code", "gradient_checkpointing"},
        "data": {"on_error"},
        "lora": set(),
        "train": {
            "output_dir",
            "eval_batch_size",
            "pad_to_multiple_of",
            "eval_steps",
            "save_steps",
            "save_total_limit",
            "resume",
            "logging_steps",
            "report_to",
            "merge",
            "tokens_per_backward",
        },
        "sample": {
            "chunk_size",
            "batch_size",
            "tensor_parallel_size",
            "data_parallel_size",
            "gpu_memory_utilization",
            "enforce_eager",
            "output_dir",
            "executor",
            "workers",
        },
        "score": {"batch_size", "gpu_memory_utilization", "enforce_eager", "verifier_workers"},
    }


def test_config_show_dumps_every_setting_with_its_help(tmp_path, capsys):
    import yaml

    from rmkit.cli import main

    recipe = write(tmp_path, "sample:\n  n: 8\n")
    assert main(["config", "show", str(recipe), "score.batch_size=4"]) == 0
    out = capsys.readouterr().out
    assert "  n: 8  # candidates per prompt" in out.splitlines()
    assert "  batch_size: 4  # conversations per forward pass" in out.splitlines()
    assert load_recipe(None, []).to_dict().keys() == yaml.safe_load(out).keys()
    reloaded = write(tmp_path, out)  # the dump is itself a recipe
    assert load_recipe(reloaded) == load_recipe(recipe, ["score.batch_size=4"])
    assert main(["config", "show", "score.batchsize=4"]) == 2
    assert "rmkit: error: recipe: unknown key score.batchsize" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, error",
    [
        ("sample.category_temperature=nope", "sample.category_temperature: unknown preset 'nope'; known: mt_bench"),
        ("sample.data_parallel_size=2", "sample.data_parallel_size > 1: use sample.executor=ray"),
        ("select.model_id=org/model", "select.model_id='org/model': it names the FastChat answer file"),
        ("score.scorers=[{name: a, verifier: math}, {name: a, verifier: ifeval}]", "score.scorers[1].name: 'a' is used twice"),
        ("score.scorers=[{name: a, verifier: math, function: 'm:f'}]", "score.scorers[0] (a): set exactly one of reward_model"),
        ("score.scorers=[{verifier: math}]", "score.scorers[0].name is not set"),
    ],
)
def test_each_section_checks_itself_as_it_is_read(override, error):
    """Not when a stage first uses the section: `rmkit sample` would have started its engine by then."""
    with pytest.raises(ConfigError) as caught:
        load_recipe(None, [override])
    assert str(caught.value).startswith(f"recipe: {error}")


def test_a_renamed_key_says_what_to_write_now():
    with pytest.raises(
        ConfigError, match=r"^recipe: sft\.bf16 is renamed: write sft\.mixed_precision: bf16 \(for bf16: true\) or no"
    ):
        load_recipe(None, ["sft.bf16=true"])
    assert load_recipe(None, ["sft.mixed_precision=bf16"]).sft.mixed_precision == "bf16"
    assert load_recipe(None, ["sft.mixed_precision=no"]).sft.mixed_precision == "no"  # YAML's boolean no, read as the word


def test_the_format_keys_take_the_formats_the_readers_know():
    import typing

    from rmkit.config.sections import DataConfig, SampleConfig
    from rmkit.data.formats import PAIR_FORMATS, PROMPT_FORMATS

    assert typing.get_args(typing.get_type_hints(DataConfig)["format"]) == ("auto", *PAIR_FORMATS)
    assert typing.get_args(typing.get_type_hints(SampleConfig)["prompts_format"]) == ("auto", *PROMPT_FORMATS)
    with pytest.raises(ConfigError, match=r"sample\.prompts_format: expected one of \['auto', 'mt_bench'"):
        load_recipe(None, ["sample.prompts_format=csv"])
