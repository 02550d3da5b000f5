import pytest

from rmkit.config import ConfigError, Recipe, load_recipe, parse_override


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
