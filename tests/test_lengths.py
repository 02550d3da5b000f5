"""A length setting above what the model reads is capped there, with one line naming the key:
train (its final held-out eval too), eval, the scorers (score, leaderboard, chat, ui), sampling.

MiniLM (recipes/tiny.yaml's backbone) has 512 absolute positions: handed a longer sequence it
failed with ``RuntimeError: The expanded size of the tensor ... must match ... (512)``.
"""

import json

from transformers import BertConfig, LlamaConfig

from rmkit.cli import main
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import ScoreConfig
from tests.conftest import REPO


class Tokenizer:
    def __init__(self, model_max_length):
        self.model_max_length = model_max_length


def test_the_limit_is_the_positions_or_the_tokenizers_lower_one():
    from rmkit.models.lengths import length_limit

    assert length_limit(BertConfig(max_position_embeddings=512), Tokenizer(512)) == (512, "max_position_embeddings")
    # RoBERTa: 514 positions, two of them taken by its padding offset; its tokenizer says 512.
    assert length_limit(BertConfig(max_position_embeddings=514), Tokenizer(512)) == (512, "its tokenizer's model_max_length")
    # A tokenizer without a limit of its own says 1e30.
    assert length_limit(LlamaConfig(max_position_embeddings=8192), Tokenizer(int(1e30))) == (8192, "max_position_embeddings")
    assert length_limit(LlamaConfig(max_position_embeddings=8192)) == (8192, "max_position_embeddings")


def test_a_longer_setting_is_capped_in_one_line_naming_the_key(capsys):
    from rmkit.models.lengths import fit_length

    config = BertConfig(max_position_embeddings=512)
    assert fit_length(256, config, Tokenizer(512), "score.max_length", "minilm") == 256
    assert capsys.readouterr().err == ""
    assert fit_length(2048, config, Tokenizer(512), "score.max_length", "minilm") == 512
    assert (
        capsys.readouterr().err
        == "rmkit: score.max_length=2048 is more than minilm reads (max_position_embeddings 512): using 512\n"
    )


def write_pairs(path, long_reply_words: int = 700):
    """Two short pairs, one whose reply alone is longer than 512 tokens, one whose prompt is."""
    rows = [
        {"prompt": "Hello?", "chosen": "I am fine, thank you.", "rejected": "bad"},
        {"prompt": "Tell me a story.", "chosen": "Once upon a time there was a robot.", "rejected": "no"},
        {"prompt": "Hi?", "chosen": "good " * long_reply_words, "rejected": "no"},
        {"prompt": "Repeat after me: " + "word " * long_reply_words, "chosen": "word word", "rejected": "no"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_eval_with_the_default_max_length_caps_it_at_minilms_512(minilm, tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs.jsonl")
    assert main(["eval", minilm, str(data), "--json"]) == 0  # score.max_length 2048, the default
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (
        f"rmkit: score.max_length=2048 is more than {minilm} reads (max_position_embeddings 512): using 512"
        in captured.err.splitlines()
    )
    assert result["max_length"] == 512
    assert result["overall"]["pairs"] == 3 and result["pairs_dropped_too_long"] == 1  # the long reply; the long prompt is cut
    assert result["data_report"]["dropped"] == {"reply_too_long": 1}


def test_the_scorer_reads_at_most_what_the_model_reads(minilm, capsys):
    from rmkit.scoring.reward_models import TransformersScorer

    scorer = TransformersScorer(ScoreConfig(reward_model=minilm, chat_template="plain"))  # max_length 2048
    conversations = [
        [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "good " * 700}],
        [{"role": "user", "content": "word " * 700}, {"role": "assistant", "content": "word word"}],
    ]
    too_long, cut = scorer(conversations)
    assert too_long is None and isinstance(cut, float)
    assert scorer.max_length == 512 and "score.max_length=2048" in capsys.readouterr().err
    assert scorer.report.dropped == {"reply_too_long": 1} and sum(scorer.report.truncated.values()) == 1


def test_training_caps_data_max_length_and_its_final_eval_runs(minilm, tmp_path, capsys):
    """The issue's case: short training pairs, held-out pairs longer than 512 tokens: the final eval crashed."""
    train_data = tmp_path / "train.jsonl"
    train_data.write_text("".join(line for line in write_pairs(tmp_path / "all.jsonl").read_text().splitlines(True)[:2]) * 4)
    heldout = write_pairs(tmp_path / "heldout.jsonl", long_reply_words=600)  # 600 words fit 1024 tokens, not 512
    out = tmp_path / "out"
    recipe = load_recipe(REPO / "recipes" / "tiny.yaml", [
        f"data.path={train_data}", f"data.eval_path={heldout}", f"train.output_dir={out}", "data.max_length=1024",
        "train.max_steps=2", "train.save_steps=1", "train.eval_steps=null", "train.per_device_batch_size=2",
    ])  # fmt: skip
    assert main(["train", *recipe_args(recipe, tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "rmkit: data.max_length=1024 is more than minilm reads (max_position_embeddings 512): using 512" in err.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_pairs"] == 3 and summary["data"]["dropped"] == {"reply_too_long": 1}
    assert load_recipe(out / "recipe.yaml").data.max_length == 512  # what training encoded at
    # Rerun: the capped run's checkpoint is resumed, not refused as trained with other settings.
    assert main(["train", *recipe_args(recipe, tmp_path)]) == 0
    assert "resuming from" in capsys.readouterr().out


def recipe_args(recipe, tmp_path) -> list[str]:
    from rmkit.config.recipe import dump_recipe

    dump_recipe(recipe, tmp_path / "recipe.yaml")
    return [str(tmp_path / "recipe.yaml")]
