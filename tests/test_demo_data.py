import importlib.util
import json
import re
from collections import Counter

from rmkit.config.recipe import load_recipe
from rmkit.data.formats import load_pairs, load_prompts
from rmkit.evaluation.evaluate import length_baseline
from rmkit.models.builtin import BUILTINS
from tests.conftest import REPO

DEMO = REPO / "rmkit" / "demo_data"


def demo_recipe():
    return load_recipe(REPO / "recipes" / "demo.yaml")


def test_demo_recipe_points_at_the_demo_data_and_builtin_models():
    recipe = demo_recipe()
    assert (REPO / recipe.data.path) == DEMO / "preferences.jsonl"
    assert (REPO / recipe.sample.prompts) == DEMO / "prompts.jsonl"
    assert recipe.model.name_or_path in BUILTINS and recipe.sample.policy in BUILTINS
    assert recipe.score.reward_model == recipe.train.output_dir  # scores with the RM it trains
    assert recipe.sample.n == 4 and recipe.train.mixed_precision == "bf16"


def test_every_demo_pair_parses():
    pairs = load_pairs(str(DEMO / "preferences.jsonl"), on_error="raise")
    assert 300 <= len(pairs) <= 400
    assert all(p.chosen != p.rejected and p.prompt[-1]["role"] == "user" for p in pairs)
    assert sum(len([m for m in p.prompt if m["role"] == "user"]) > 1 for p in pairs) >= 50  # multi-turn
    assert any(p.prompt[0]["role"] == "system" for p in pairs)


def test_demo_pairs_fail_in_varied_ways():
    kinds = Counter(json.loads(line)["rejected_kind"] for line in (DEMO / "preferences.jsonl").open())
    assert set(kinds) >= {"wrong", "off_topic", "rude", "refusal", "truncated", "vague"}
    assert max(kinds.values()) < 0.25 * sum(kinds.values())


def test_demo_prompts_have_two_turns():
    prompts = load_prompts(str(DEMO / "prompts.jsonl"), on_error="raise")
    assert 16 <= len(prompts) <= 24
    assert all(len(p.turns) == 2 for p in prompts)
    assert len({p.category for p in prompts}) >= 4


def test_committed_demo_data_is_what_the_script_writes():
    spec = importlib.util.spec_from_file_location("make_demo_data", REPO / "scripts" / "make_demo_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    written = [json.loads(line) for line in (DEMO / "preferences.jsonl").open(encoding="utf-8")]
    assert written == script.preference_records()
    assert [json.loads(line) for line in (DEMO / "prompts.jsonl").open()] == script.prompt_records()


def test_the_demo_readme_tells_the_truth_about_the_data():
    """Every number the README gives is the data's, so it cannot drift from a regenerated file."""
    readme = (DEMO / "README.md").read_text()
    assert "This is demo data, written for rmkit" in readme and "scripts/make_demo_data.py" in readme
    pairs = load_pairs(str(DEMO / "preferences.jsonl"), on_error="raise")
    assert number(readme, r"`preferences\.jsonl`: (\d+) preference pairs") == len(pairs)
    kinds = Counter(json.loads(line)["rejected_kind"] for line in (DEMO / "preferences.jsonl").open())
    assert {kind: int(n) for kind, n in re.findall(r"^\| `(\w+)` \| (\d+) \|", readme, re.M)} == kinds
    user_turns = [sum(m["role"] == "user" for m in p.prompt) for p in pairs]
    assert number(readme, r"(\d+) pairs are multi-turn") == sum(turns > 1 for turns in user_turns)
    single_turn = [p for p, turns in zip(pairs, user_turns) if turns == 1]
    assert "about one single-turn\npair in six has a system message" in readme
    assert round(len(single_turn) / sum(p.prompt[0]["role"] == "system" for p in single_turn)) == 6
    assert number(readme, r"right on only (\d+)% of the pairs") == round(100 * length_baseline(pairs)["overall"])
    prompts = load_prompts(str(DEMO / "prompts.jsonl"), on_error="raise")
    assert number(readme, r"`prompts\.jsonl`: (\d+) two-turn prompts") == len(prompts)
    listed = re.search(r"in seven categories: ([\w, \n]+)\.", readme).group(1)
    assert sorted(re.split(r",\s*", listed)) == sorted({p.category for p in prompts}) and len({p.category for p in prompts}) == 7


def number(text: str, pattern: str) -> int:
    match = re.search(pattern, text)
    assert match, pattern
    return int(match.group(1))
