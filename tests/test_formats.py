import json
from collections import Counter

import pytest

from rmkit.conversation import RecordError, reply_message
from rmkit.data.data_report import DataReport
from rmkit.data.formats import (
    detect_pair_format,
    detect_prompt_format,
    load_pair_split,
    load_pairs,
    load_prompts,
    parse_pair,
    parse_prompt,
)
from rmkit.data.records import reply_of
from rmkit.errors import ConfigError
from tests.conftest import shared_data

SRC = "pairs.jsonl:7"


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def test_a_reply_and_its_assistant_message_convert_both_ways():
    call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}
    assert reply_message("Paris.") == assistant("Paris.") and reply_message(call) is call
    for reply in ("Paris.", call):
        assert reply_of(reply_message(reply), SRC, "chosen") == reply
    with pytest.raises(RecordError, match="field 'chosen': the reply is empty"):
        reply_of(assistant("  "), SRC, "chosen")


def system(text):
    return {"role": "system", "content": text}


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- HH-RLHF


def test_hh_rlhf_multi_turn():
    shared = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Find Chris Evans movies\n\nAssistant:"
    record = {"chosen": shared + " Captain America.", "rejected": shared + " I can't."}
    pair = parse_pair(record, SRC)
    assert pair.prompt == [user("Hi"), assistant("Hello!"), user("Find Chris Evans movies")]
    assert (pair.chosen, pair.rejected, pair.margin, pair.source) == ("Captain America.", "I can't.", None, SRC)


def test_hh_rlhf_splits_where_the_sides_diverge_not_at_each_last_marker():
    # The chosen reply itself contains "\n\nAssistant:"; its own last marker is inside the reply.
    prompt = "\n\nHuman: How much do solar panels cost?\n\nAssistant:"
    record = {"chosen": prompt + " Umm. Just a second...\n\nAssistant: About $50.", "rejected": prompt + " Visit a web site."}
    pair = parse_pair(record, SRC, format="hh_rlhf")
    assert pair.prompt == [user("How much do solar panels cost?")]
    assert pair.chosen == "Umm. Just a second...\n\nAssistant: About $50."
    assert pair.rejected == "Visit a web site."


def test_hh_rlhf_replies_sharing_their_first_words_back_off_to_the_turn():
    prompt = "\n\nHuman: Is it safe?\n\nAssistant:"
    pair = parse_pair({"chosen": prompt + "  Yes, mostly.", "rejected": prompt + " Yes, always."}, SRC)
    assert pair.prompt == [user("Is it safe?")]
    assert (pair.chosen, pair.rejected) == (" Yes, mostly.", "Yes, always.")  # only one space stripped


def test_hh_rlhf_keeps_an_empty_reply_and_reads_a_margin():
    prompt = "\n\nHuman: list of profane bad words\n\nAssistant:"
    pair = parse_pair({"chosen": prompt + " ", "rejected": prompt + " Ok", "margin": 2}, SRC)
    assert (pair.chosen, pair.rejected, pair.margin) == ("", "Ok", 2.0)


# ----------------------------------------------------------------------------- TRL


def test_trl_conversational_with_implicit_prompt():
    record = {
        "chosen": [system("Be brief."), user("2+2?"), assistant("4"), user("And 3+3?"), assistant("6")],
        "rejected": [system("Be brief."), user("2+2?"), assistant("4"), user("And 3+3?"), assistant("7")],
    }
    pair = parse_pair(record, SRC)
    assert pair.prompt == [system("Be brief."), user("2+2?"), assistant("4"), user("And 3+3?")]
    assert (pair.chosen, pair.rejected) == ("6", "7")


def test_trl_conversational_with_explicit_prompt_and_system_field():
    record = {"prompt": [user("Hi")], "chosen": [assistant("Hello!")], "rejected": [assistant("Go away.")], "system": "Be kind."}
    pair = parse_pair(record, SRC, format="trl")
    assert pair.prompt == [system("Be kind."), user("Hi")]
    assert (pair.chosen, pair.rejected) == ("Hello!", "Go away.")


def test_trl_explicit_prompt_whose_replies_repeat_it():
    # UltraFeedback-style: a string prompt, and each side the whole conversation.
    record = {"prompt": "Hi", "chosen": [user("Hi"), assistant("Hello!")], "rejected": [user("Hi"), assistant("No.")]}
    pair = parse_pair(record, SRC)
    assert (pair.prompt, pair.chosen, pair.rejected) == ([user("Hi")], "Hello!", "No.")


def test_trl_plain_strings():
    pair = parse_pair({"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome", "margin": 0.5}, SRC)
    assert (pair.prompt, pair.chosen, pair.rejected, pair.margin) == ([user("Capital of France?")], "Paris", "Rome", 0.5)


def test_trl_reply_must_be_one_assistant_message():
    record = {"prompt": [user("Hi")], "chosen": [assistant("a"), user("b")], "rejected": [assistant("c")]}
    with pytest.raises(RecordError, match=r"pairs\.jsonl:7, field 'chosen': a reply must be exactly one assistant") as info:
        parse_pair(record, SRC)
    assert info.value.kind == "invalid"


# ----------------------------------------------------------------------------- MedicalGPT, ShareGPT


def test_medicalgpt_with_system_and_history():
    record = {
        "system": "You are a doctor.",
        "history": [["I have a cough.", "Since when?"]],
        "question": "Two days.",
        "response_chosen": "Rest and fluids.",
        "response_rejected": "Ignore it.",
    }
    pair = parse_pair(record, SRC)
    assert pair.prompt == [system("You are a doctor."), user("I have a cough."), assistant("Since when?"), user("Two days.")]
    assert (pair.chosen, pair.rejected) == ("Rest and fluids.", "Ignore it.")


def test_medicalgpt_minimal():
    pair = parse_pair({"question": "Q", "response_chosen": "A", "response_rejected": "B", "history": None}, SRC)
    assert (pair.prompt, pair.chosen, pair.rejected) == ([user("Q")], "A", "B")


def test_sharegpt_with_system_turn_and_reply_objects():
    record = {
        "conversations": [
            {"from": "system", "value": "Be terse."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
            {"from": "user", "value": "Bye"},
        ],
        "chosen": {"from": "gpt", "value": "Goodbye!"},
        "rejected": "Whatever.",
    }
    pair = parse_pair(record, SRC)
    assert pair.prompt == [system("Be terse."), user("Hi"), assistant("Hello"), user("Bye")]
    assert (pair.chosen, pair.rejected) == ("Goodbye!", "Whatever.")


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"}, "hh_rlhf"),
        ({"prompt": "a", "chosen": "b", "rejected": "c"}, "trl"),
        ({"chosen": [user("a"), assistant("b")], "rejected": [user("a"), assistant("c")]}, "trl"),
        ({"question": "a", "response_chosen": "b", "response_rejected": "c"}, "medicalgpt"),
        ({"conversations": [], "chosen": "b", "rejected": "c"}, "sharegpt"),
    ],
)
def test_detect_pair_format(record, expected):
    assert detect_pair_format(record) == expected


def test_undetectable_pair_format_and_unknown_format_name():
    with pytest.raises(RecordError, match=r"pairs\.jsonl:7: cannot detect the pair format from keys \['answer', 'query'\]"):
        parse_pair({"query": "a", "answer": "b"}, SRC)
    with pytest.raises(ValueError, match="unknown pair format 'dpo'"):
        parse_pair({}, SRC, format="dpo")


# ----------------------------------------------------------------------------- bad records

HH_PROMPT = "\n\nHuman: Hi\n\nAssistant:"
BAD_RECORDS = [
    # (record, kind, field, words in the reason)
    ({"prompt": "Hi", "chosen": "Hello"}, "missing", "rejected", "missing"),
    ({"question": "Q", "response_chosen": "A", "response_rejected": None}, "missing", "response_rejected", "missing"),
    ({"conversations": [{"from": "human"}], "chosen": "a", "rejected": "b"}, "missing", "conversations[0].value", "missing"),
    ({"prompt": "Hi", "chosen": 3, "rejected": "b"}, "type", "chosen", "expected str or list, got int"),
    (
        {"question": "Q", "history": [["only one"]], "response_chosen": "A", "response_rejected": "B"},
        "type",
        "history[0]",
        "pair of strings",
    ),
    ({"prompt": "Hi", "chosen": "a", "rejected": "b", "margin": "big"}, "type", "margin", "expected int or float, got str"),
    ({"prompt": "Hi", "chosen": "  \n", "rejected": "b"}, "empty", "chosen", "empty"),
    ({"question": "Q", "response_chosen": "A", "response_rejected": ""}, "empty", "response_rejected", "empty"),
    ({"chosen": HH_PROMPT + " Same.", "rejected": HH_PROMPT + " Same."}, "identical", "rejected", "identical"),
    ({"prompt": [user("Hi")], "chosen": [assistant("a")], "rejected": [assistant("a")]}, "identical", "rejected", "identical"),
    (
        {"prompt": [user("Hi"), assistant("Hey")], "chosen": "a", "rejected": "b"},
        "invalid",
        "prompt",
        "must end with a user turn",
    ),
    ({"chosen": "Hi\n\nAssistant: a", "rejected": "Hi\n\nAssistant: b"}, "invalid", "chosen", "must start with"),
    (
        {"conversations": [{"from": "bot", "value": "x"}], "chosen": "a", "rejected": "b"},
        "invalid",
        "conversations[0].from",
        "'from' must be one of",
    ),
    # turns out of order: user and assistant turns alternate
    ({"prompt": [user("Hi"), user("Again")], "chosen": "a", "rejected": "b"}, "order", "prompt[1]", "two user turns in a row"),
    (
        {
            "chosen": "\n\nHuman: a\n\nAssistant: b\n\nAssistant: c\n\nHuman: d" + "\n\nAssistant: x",
            "rejected": "\n\nHuman: a\n\nAssistant: b\n\nAssistant: c\n\nHuman: d\n\nAssistant: y",
        },
        "order",
        "chosen",
        "two assistant turns in a row (turns 2 and 3 of 4)",
    ),
    (
        {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}], "chosen": "x", "rejected": "y"},
        "order",
        "conversations[1]",
        "two user turns in a row",
    ),
]


@pytest.mark.parametrize("record, kind, field, reason", BAD_RECORDS)
def test_bad_record_error_names_file_line_field_and_kind(tmp_path, record, kind, field, reason):
    good = {"prompt": "Hi", "chosen": "a", "rejected": "b"}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, good, record])
    with pytest.raises(RecordError) as info:
        load_pairs(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:3, field {field!r}: ")
    assert reason in message
    assert (info.value.kind, info.value.field, info.value.source) == (kind, field, f"{path}:3")


def test_on_error_skip_counts_each_kind(tmp_path):
    good = {"prompt": "Hi", "chosen": "a", "rejected": "b"}
    records = [good, *(bad for bad, *_ in BAD_RECORDS), good]
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    report = DataReport()
    pairs = load_pairs(str(path), on_error="skip", report=report)
    assert [p.source for p in pairs] == [f"{path}:1", f"{path}:{len(records)}"]
    assert (report.read, report.kept) == (len(records), 2)
    assert report.skipped == Counter({"missing": 3, "type": 3, "empty": 2, "identical": 2, "invalid": 3, "order": 3})


def test_on_error_skip_skips_broken_json_and_non_objects(tmp_path):
    good = json.dumps({"prompt": "Hi", "chosen": "a", "rejected": "b"})
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([good, '{"prompt": "Hi", "chosen": ', "[1, 2]", '"text"', good]) + "\n")
    report = DataReport()
    pairs = load_pairs(str(path), on_error="skip", report=report)
    assert [p.source for p in pairs] == [f"{path}:1", f"{path}:5"]
    assert (report.read, report.kept) == (5, 2)
    assert report.skipped == Counter({"invalid_json": 1, "type": 2})
    with pytest.raises(RecordError, match=r"mixed\.jsonl:2: invalid JSON"):
        load_pairs(str(path))
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([json.loads(good), "text", json.loads(good)]))
    assert len(load_pairs(str(listed), on_error="skip")) == 2


def test_skip_with_nothing_usable_fails_clearly(tmp_path):
    path = write_jsonl(tmp_path / "other.jsonl", [{"query": "a", "answer": "b"}] * 2)
    with pytest.raises(ValueError, match=r"no usable records .*other\.jsonl:1: cannot detect the pair format"):
        load_pairs(str(path), on_error="skip")
    with pytest.raises(ValueError, match="on_error"):
        load_pairs(str(path), on_error="ignore")


def test_load_pairs_sets_subset_from_folder_or_file_stem(tmp_path):
    record = {"prompt": "Hi", "chosen": "a", "rejected": "b"}
    write_jsonl(tmp_path / "hh" / "helpful-base" / "test.jsonl", [record])
    write_jsonl(tmp_path / "hh" / "extra_pairs-test.jsonl", [record])
    assert [p.subset for p in load_pairs(str(tmp_path / "hh"), split="test")] == ["extra_pairs-test", "helpful-base"]


def test_load_pair_split_from_a_fraction_or_an_eval_file(tmp_path):
    from rmkit.config.sections import DataConfig

    def write(path, n, tag):
        write_jsonl(path, [{"prompt": f"{tag} question {i}", "chosen": "yes", "rejected": "no"} for i in range(n)])

    write(tmp_path / "train.jsonl", 20, "train")
    write(tmp_path / "eval.jsonl", 4, "eval")
    train, heldout = load_pair_split(DataConfig(path=str(tmp_path / "train.jsonl"), eval_fraction=0.25, seed=1))
    assert (len(train), len(heldout)) == (15, 5)
    assert len({p.prompt[0]["content"] for p in train + heldout}) == 20  # a partition of the file

    separate = DataConfig(path=str(tmp_path / "train.jsonl"), eval_path=str(tmp_path / "eval.jsonl"), max_examples=3)
    train, heldout = load_pair_split(separate)
    assert [p.prompt[0]["content"] for p in train] == ["train question 0", "train question 1", "train question 2"]
    assert [p.prompt[0]["content"] for p in heldout] == ["eval question 0", "eval question 1", "eval question 2"]


def test_hh_rlhf_test_split_real_data():
    root = shared_data("hh_rlhf")
    with pytest.raises(ConfigError, match=r"no file of the 'train' split.*: test \(4 files\)"):
        load_pairs(str(root))  # only test files: never trained on by accident
    report = DataReport()
    pairs = load_pairs(str(root), on_error="skip", report=report, split="test")
    # 11 transcripts have two Assistant turns in a row (a "Human:" inside a turn, a reply split in two)
    assert (report.read, report.kept, report.skipped) == (8552, 8505, Counter({"identical": 36, "order": 11}))
    assert report.files == [
        str(root / subset / "test.jsonl.gz")
        for subset in ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
    ]
    assert Counter(p.subset for p in pairs) == {
        "harmless-base": 2312 - 4,
        "helpful-base": 2354 - 2 - 7,
        "helpful-online": 1137 - 2,
        "helpful-rejection-sampled": 2749 - 32,
    }
    user_turns = [sum(m["role"] == "user" for m in p.prompt) for p in pairs]
    assert sum(n >= 2 for n in user_turns) > 5000 and max(user_turns) == 25
    assert all(p.prompt[-1]["role"] == "user" and p.chosen != p.rejected for p in pairs)


# ----------------------------------------------------------------------------- prompts


def test_mt_bench_prompt():
    record = {"question_id": 101, "category": "reasoning", "turns": ["Q1", "Q2"], "reference": ["R1", "R2"]}
    prompt = parse_prompt(record, "question.jsonl:3")
    assert (prompt.id, prompt.turns, prompt.history, prompt.category) == ("101", ["Q1", "Q2"], [], "reasoning")
    assert prompt.extra == {"question_id": 101, "reference": ["R1", "R2"]}
    assert prompt.source == "question.jsonl:3"


def test_messages_prompt_keeps_history_and_drops_trailing_assistant():
    record = {"id": 9, "messages": [system("S"), user("a"), assistant("b"), user("c"), assistant("old answer")]}
    prompt = parse_prompt(record, "chats.jsonl:1")
    assert (prompt.id, prompt.turns, prompt.history) == ("9", ["c"], [system("S"), user("a"), assistant("b")])


def test_hh_rlhf_prompts_from_a_transcript_or_a_prompt_field():
    chosen = parse_prompt({"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d", "rejected": "x"}, "test.jsonl:4")
    prompt_field = parse_prompt({"prompt": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"}, "test.jsonl:5")
    for prompt in (chosen, prompt_field):
        assert (prompt.turns, prompt.history) == (["c"], [user("a"), assistant("b")])
    assert (chosen.id, prompt_field.id) == ("test-4", "test-5")


def test_alpaca_eval_prompt():
    with_input = parse_prompt({"instruction": "Translate.", "input": "Bonjour", "dataset": "koala"}, "eval.json:#0")
    assert (with_input.id, with_input.turns, with_input.category) == ("eval-0", ["Translate.\n\nBonjour"], "koala")
    assert with_input.extra == {"instruction": "Translate.", "input": "Bonjour", "dataset": "koala"}
    plain = parse_prompt({"instruction": "Write a haiku.", "input": ""}, "eval.json:#1")
    assert plain.turns == ["Write a haiku."]


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"question_id": 1, "turns": ["a"]}, "mt_bench"),
        ({"messages": [user("a")]}, "messages"),
        ({"instruction": "a"}, "alpaca_eval"),
        ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "c"}, "hh_rlhf"),
        ({"prompt": "Human: a\n\nAssistant:"}, "hh_rlhf"),
        ({"prompt": "a"}, "text"),
        ({"text": "a"}, "text"),
    ],
)
def test_detect_prompt_format(record, expected):
    assert detect_prompt_format(record) == expected


def test_text_file_prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("Tell me a joke.\n\nWrite a poem.\n", encoding="utf-8")
    prompts = load_prompts(str(path))
    assert [(p.id, p.turns) for p in prompts] == [("prompts-1", ["Tell me a joke."]), ("prompts-3", ["Write a poem."])]


def test_duplicate_prompt_ids_name_both_lines(tmp_path):
    questions = [{"question_id": 1, "turns": ["a"]}, {"question_id": 2, "turns": ["b"]}, {"question_id": 1, "turns": ["c"]}]
    path = write_jsonl(tmp_path / "q.jsonl", questions)
    with pytest.raises(RecordError, match=r"q\.jsonl:3, field 'id': duplicate prompt id '1' \(first at .*q\.jsonl:1\)"):
        load_prompts(str(path))
    report = DataReport()
    assert [p.id for p in load_prompts(str(path), on_error="skip", report=report)] == ["1", "2"]
    assert report.skipped == Counter({"invalid": 1})


def test_on_error_skip_skips_broken_prompt_lines(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question_id": 1, "turns": ["a"]}\n{"question_id": \n["x"]\n{"question_id": 2, "turns": ["b"]}\n')
    report = DataReport()
    assert [p.id for p in load_prompts(str(path), on_error="skip", report=report)] == ["1", "2"]
    assert report.skipped == Counter({"invalid_json": 1, "type": 1}) and report.files == [str(path)]


def test_bad_prompt_records(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question_id": 1, "turns": "one string"}])
    with pytest.raises(RecordError, match=r"p\.jsonl:1, field 'turns': expected list, got str"):
        load_prompts(str(path))
    with pytest.raises(RecordError, match=r"x:1, field 'messages': no user message"):
        parse_prompt({"messages": [system("S")]}, "x:1")
    with pytest.raises(RecordError, match="cannot detect the prompt format"):
        parse_prompt({"question": "a"}, "x:1")


def test_mt_bench_real_questions():
    path = shared_data("mt_bench/question.jsonl")
    prompts = load_prompts(str(path))
    assert len(prompts) == 80 and all(len(p.turns) == 2 and not p.history for p in prompts)
    categories = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
    assert Counter(p.category for p in prompts) == {category: 10 for category in categories}
    assert sum("reference" in p.extra for p in prompts) == 39
    assert [p.id for p in prompts] == [str(i) for i in range(81, 161)]
