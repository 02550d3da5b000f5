import json
import math
import re

import pytest

from rmkit.cli import main
from rmkit.config.recipe import dump_recipe, load_recipe
from rmkit.config.sections import Recipe
from rmkit.conversation import PreferencePair, message
from rmkit.data.formats import load_pair_split
from rmkit.evaluation.evaluate import format_table, length_baseline, pairwise_metrics, results, subsample


def pair(chosen: str, rejected: str, subset: str = "") -> PreferencePair:
    return PreferencePair([message("user", "Hello! How are you?")], chosen, rejected, subset=subset)


def test_pairwise_metrics_by_hand():
    # a: a win and a tie; b: a loss and a win
    metrics = pairwise_metrics([2.0, 1.0, 0.0, 3.0], [1.0, 1.0, 1.0, 0.0], ["a", "a", "b", "b"])
    a, b, overall = metrics["subsets"]["a"], metrics["subsets"]["b"], metrics["overall"]
    # a's rewards 2, 1, 1, 1: mean 1.25, population variance (0.5625 + 3 * 0.0625) / 4
    assert a == pytest.approx(
        {"pairs": 2, "accuracy": 0.75, "mean_margin": 0.5, "reward_mean": 1.25, "reward_spread": math.sqrt(0.1875)}
    )
    assert b["accuracy"] == 0.5 and b["mean_margin"] == 1.0
    # overall = the count-weighted mean of the subsets
    assert overall["pairs"] == 4
    assert overall["accuracy"] == pytest.approx((2 * 0.75 + 2 * 0.5) / 4)
    assert overall["mean_margin"] == pytest.approx(0.75)
    assert list(metrics["subsets"]) == ["a", "b"]


def test_pairwise_metrics_rejects_mismatched_lists():
    with pytest.raises(ValueError):
        pairwise_metrics([1.0], [0.0, 1.0], ["a"])
    with pytest.raises(ValueError):
        pairwise_metrics([], [], [])


def test_length_baseline_counts_ties_half():
    pairs = [pair("a longer reply", "short", "x"), pair("short", "a longer reply", "x"), pair("same", "SAME", "y")]
    assert length_baseline(pairs) == {"overall": pytest.approx(0.5), "subsets": {"x": 0.5, "y": 0.5}}
    assert length_baseline([pair("much longer", "no")])["overall"] == 1.0


def test_results_put_baselines_beside_the_model():
    pairs = [pair("a longer reply", "short", "x"), pair("short", "a longer reply", "y")]
    result = results(pairs, [1.0, 1.0], [0.0, 0.0])
    assert result["overall"]["accuracy"] == 1.0 and result["overall"]["length_baseline"] == 0.5
    assert result["subsets"]["y"]["length_baseline"] == 0.0 and result["subsets"]["y"]["chance"] == 0.5
    table = format_table(result).splitlines()
    assert table[0].split()[:3] == ["subset", "pairs", "accuracy"]
    assert table[-1].split()[:3] == ["overall", "2", "1.000"]
    assert [row.split()[0] for row in table[2:4]] == ["x", "y"]


def test_subsample_is_seeded_and_keeps_order():
    pairs = [pair(f"reply {i}", "no", "s") for i in range(20)]
    picked = subsample(pairs, 5, seed=0)
    assert picked == subsample(pairs, 5, seed=0) and len(picked) == 5
    assert [pairs.index(p) for p in picked] == sorted(pairs.index(p) for p in picked)
    assert subsample(pairs, None, seed=0) is pairs and subsample(pairs, 50, seed=0) is pairs


def write_trl(path, rows):
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in rows))


def test_eval_command_json(tiny_llama, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_trl(
        data / "greetings.jsonl",
        [
            ("Hello! How are you?", "I am fine, thank you.", "bad"),
            ("Tell me a story.", "Once upon a time there was a small robot who loved to read books.", "no"),
        ],
    )
    write_trl(
        data / "facts.jsonl",
        [
            ("What is the capital of France?", "Paris is the capital of France.", "The sea is blue."),
            ("Write a short poem about the sea.", "The sea is blue and wide.", "one two three " * 100),  # too long
        ],
    )
    main(["eval", str(tiny_llama), str(data), "--json", "--max-length", "64", "--batch-size", "2"])
    result = json.loads(capsys.readouterr().out)

    assert set(result) >= {"reward_model", "data", "overall", "subsets", "pairs_dropped_too_long", "data_report"}
    assert list(result["subsets"]) == ["facts", "greetings"]  # files in sorted order
    assert result["pairs_dropped_too_long"] == 1
    assert result["subsets"]["facts"]["pairs"] == 1 and result["subsets"]["greetings"]["pairs"] == 2
    overall = result["overall"]
    assert set(overall) == {"pairs", "accuracy", "mean_margin", "reward_mean", "reward_spread", "length_baseline", "chance"}
    assert overall["pairs"] == 3 and overall["chance"] == 0.5
    assert overall["length_baseline"] == 1.0  # every kept chosen reply is the longer one
    assert 0.0 <= overall["accuracy"] <= 1.0 and overall["reward_spread"] >= 0.0
    assert result["data_report"]["read"] == 4 and result["data_report"]["kept"] == 3


def test_eval_command_table(tiny_llama, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    write_trl(data, [("Hello! How are you?", "I am fine, thank you.", "bad")] * 3)
    main(["eval", str(tiny_llama), str(data), "--max-pairs", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "subset"
    assert lines[2].split()[:2] == ["pairs", "2"] and lines[-1].split()[:2] == ["overall", "2"]


def test_heldout_is_the_split_training_made(tiny_llama, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    write_trl(data, [(f"Question number {i}?", f"A helpful answer to question {i}.", "no") for i in range(10)])
    run = tmp_path / "run"
    run.mkdir()
    (run / "model").symlink_to(tiny_llama)  # the merged model of the run
    recipe = Recipe()
    recipe.data.path, recipe.data.eval_fraction, recipe.data.seed = str(data), 0.3, 3
    dump_recipe(recipe, run / "recipe.yaml")

    main(["eval", str(run / "model"), "--heldout", "--json", "--max-length", "64"])
    result = json.loads(capsys.readouterr().out)

    train, heldout = load_pair_split(load_recipe(run / "recipe.yaml").data)
    assert result["overall"]["pairs"] == len(heldout) == 3
    assert result["data"] == f"{data} (held-out 0.3, seed 3)"
    assert not {p.prompt[0]["content"] for p in train} & {p.prompt[0]["content"] for p in heldout}


def test_heldout_scores_the_pairs_training_evaluated_and_counts_pairs(tiny_llama, tmp_path, capsys):
    """At the run's data.max_length, as training encoded them: the same pairs kept, each drop one pair."""
    from transformers import AutoTokenizer

    from rmkit.data.encode import encode_pairs

    data = tmp_path / "pairs.jsonl"
    long = "one two three four five six seven eight nine ten " * 4  # ~40 tokens: fits 1,024, not 40
    write_trl(data, [(f"Question {i}?", long + "yes" if i % 2 else f"Answer {i}.", long if i % 2 else "no") for i in range(12)])
    run = tmp_path / "run"
    run.mkdir()
    (run / "model").symlink_to(tiny_llama)
    recipe = Recipe()
    recipe.data.path, recipe.data.eval_fraction, recipe.data.max_length = str(data), 0.5, 40
    dump_recipe(recipe, run / "recipe.yaml")

    main(["eval", str(run), "--heldout", "--json"])
    result = json.loads(capsys.readouterr().out)

    _, heldout = load_pair_split(recipe.data)
    evaluated = encode_pairs(AutoTokenizer.from_pretrained(tiny_llama), heldout, 40)
    dropped = len(heldout) - len(evaluated)
    assert result["max_length"] == 40 and 0 < dropped < len(heldout)
    assert result["overall"]["pairs"] == len(evaluated)
    assert result["pairs_dropped_too_long"] == result["data_report"]["dropped"]["reply_too_long"] == dropped
    main(["eval", str(run), "--heldout", "score.max_length=1024", "--json"])  # a length the user gives wins
    assert json.loads(capsys.readouterr().out)["max_length"] == 1024
    main(["eval", str(run), "--heldout", "--json", "--max-length", "512"])
    assert json.loads(capsys.readouterr().out)["max_length"] == 512


def test_eval_needs_data_or_a_training_run(tiny_llama, tmp_path, capsys):
    assert main(["eval", str(tiny_llama)]) == 2
    assert "either DATA or --heldout" in capsys.readouterr().err
    assert main(["eval", str(tiny_llama), "--heldout"]) == 2
    assert "no recipe.yaml" in capsys.readouterr().err
    recipe = Recipe()
    recipe.data.path = "moved/pairs.jsonl"
    dump_recipe(recipe, tmp_path / "recipe.yaml")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")  # a training run's folder: its model, and the data it read are gone
    assert main(["eval", str(tmp_path), "--heldout"]) == 2
    assert re.search(r"recipe\.yaml: .*moved/pairs\.jsonl.*relative to where training ran", capsys.readouterr().err)


def test_eval_reads_its_scoring_settings_from_a_recipe(tiny_llama, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    write_trl(data, [("Hello! How are you?", "I am fine, thank you.", "bad")] * 2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("score:\n  max_length: 64\n  batch_size: 1\n")
    main(["eval", str(tiny_llama), str(data), "--json"])
    captured = capsys.readouterr()  # ScoreConfig's default 2048, as every verb's, capped at the tiny model's 1024 positions
    assert json.loads(captured.out)["max_length"] == 1024 and "score.max_length=2048 is more than" in captured.err
    main(["eval", str(tiny_llama), str(data), "--json", "--recipe", str(recipe)])
    assert json.loads(capsys.readouterr().out)["max_length"] == 64
    main(["eval", str(tiny_llama), str(data), "score.max_length=32", "--json"])
    assert json.loads(capsys.readouterr().out)["max_length"] == 32
    assert main(["eval", str(tiny_llama), str(data), str(data)]) == 2
    assert "give either DATA or --heldout" in capsys.readouterr().err
