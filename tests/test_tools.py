"""Tool-call conversations: the same small tool-use files in ShareGPT (function_call /
observation turns, MedicalGPT / LLaMA-Factory style) and TRL / OpenAI (tool_calls, role: tool)
shapes, parsed, rendered, encoded, exported, sampled and scored."""

import json
from pathlib import Path

import pytest

from rmkit.config.sections import SampleConfig
from rmkit.conversation import RecordError, message_text, tools_of
from rmkit.data.encode import encode_conversation, encode_pairs
from rmkit.data.formats import load_pairs, load_prompts, parse_pair
from rmkit.data.templates import knows_tools, render, tools_as_text, use_template
from rmkit.sampling.generate import make_policy, sample_prompts
from rmkit.selection.exports import pair_record, sft_record
from tests.fakes import FakeBackend
from tests.tiny import build_tokenizer

DATA = Path(__file__).parent / "data"
SHAPES = ("sharegpt", "messages")

# A template that takes tools itself, in the style of Qwen2.5's (schemas in the system turn,
# calls and results as their own blocks).
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n{% endif %}"
    "TOOLS:{% for t in tools %} {{ t['function']['name'] }}{% endfor %}<|im_end|>\n"
    "{% elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{% elif m['role'] == 'tool' %}<|im_start|>tool\n{{ m['content'] }}<|im_end|>\n"
    "{% elif m['tool_calls'] is defined %}<|im_start|>assistant\n{% for c in m['tool_calls'] %}"
    "CALL {{ c['function']['name'] }} {{ c['function']['arguments'] | tojson }}{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def strip_ids(value):
    """Drop the OpenAI call ids and tool names the ShareGPT shape does not carry."""
    if isinstance(value, dict):
        keep = {k: v for k, v in value.items() if k not in ("id", "tool_call_id")}
        if value.get("role") == "tool":
            keep.pop("name", None)
        return {k: strip_ids(v) for k, v in keep.items()}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


@pytest.fixture(scope="module")
def pairs():
    return {shape: load_pairs(str(DATA / f"tool_pairs_{shape}.jsonl")) for shape in SHAPES}


def test_both_shapes_parse_to_the_same_pairs(pairs):
    sharegpt, messages = pairs["sharegpt"], pairs["messages"]
    assert len(sharegpt) == len(messages) == 4
    for a, b in zip(sharegpt, messages):
        assert strip_ids(a.chosen_conversation()) == strip_ids(b.chosen_conversation())
        assert strip_ids(a.rejected_conversation()) == strip_ids(b.rejected_conversation())
    first = sharegpt[0]
    assert [m["role"] for m in first.prompt] == ["system", "user", "assistant", "tool"]
    # the schemas sit on the system message, in the {"type": "function", "function": ...} shape
    assert [t["function"]["name"] for t in tools_of(first.prompt)] == ["calculate_bmi"]
    assert first.prompt[2]["tool_calls"] == [
        {"type": "function", "function": {"name": "calculate_bmi", "arguments": {"height_m": 1.75, "weight_kg": 82}}}
    ]
    # a reply may itself be a tool call: choosing to check beats guessing
    assert sharegpt[1].chosen["tool_calls"][0]["function"]["name"] == "check_drug_interaction"
    assert isinstance(sharegpt[1].rejected, str)
    # shown (UI, report) and measured (eval's length baseline) as its calls in JSON
    assert (
        message_text(sharegpt[1].chosen)
        == '{"name": "check_drug_interaction", "arguments": {"drug_a": "ibuprofen", "drug_b": "warfarin"}}'
    )
    assert tools_of(sharegpt[3].prompt) is None and sharegpt[3].prompt[0]["role"] == "user"


def test_the_issue_record_no_longer_fails_at_function_call():
    record = json.loads((DATA / "tool_pairs_sharegpt.jsonl").read_text().splitlines()[0])
    assert record["conversations"][1]["from"] == "function_call"
    assert parse_pair(record, "x.jsonl:1", format="sharegpt").prompt[-1]["role"] == "tool"


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda r: r["conversations"][1].update(value="calculate_bmi(1.75, 82)"), "conversations[1].value"),
        (lambda r: r["conversations"][1].update(value='{"arguments": {}}'), "conversations[1].value[0]"),
        (lambda r: r.update(tools="[{]"), "tools"),
        (lambda r: r.update(tools={"name": "calculate_bmi"}), "tools"),
        (lambda r: r["conversations"].pop(), "prompt"),  # ends with the call, not its result
    ],
)
def test_bad_tool_records_name_their_field(change, field):
    record = json.loads((DATA / "tool_pairs_sharegpt.jsonl").read_text().splitlines()[0])
    change(record)
    with pytest.raises(RecordError) as info:
        parse_pair(record, "x.jsonl:1")
    assert info.value.field == field


def test_openai_arguments_must_be_an_object():
    record = json.loads((DATA / "tool_pairs_messages.jsonl").read_text().splitlines()[0])
    record["prompt"][2]["tool_calls"][0]["function"]["arguments"] = "[1, 2]"
    with pytest.raises(RecordError, match="arguments must be an object") as info:
        parse_pair(record, "x.jsonl:1")
    assert info.value.field == "prompt[2].tool_calls[0].arguments"


# ----------------------------------------------------------------------------- rendering


def test_a_template_without_tools_gets_the_documented_text_fallback(pairs):
    tokenizer = build_tokenizer()  # chatml: no tools
    assert not knows_tools(tokenizer.chat_template)
    conversation = pairs["sharegpt"][0].chosen_conversation()
    text = render(tokenizer, conversation)
    assert text.startswith("<|im_start|>system\nYou are a careful medical assistant.")
    assert '<tools>\n{"type": "function", "function": {"name": "calculate_bmi"' in text
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "calculate_bmi", "arguments": {"height_m": 1.75' in text
    assert '<|im_start|>user\n<tool_response>\n{"bmi": 26.8' in text
    assert text == tokenizer.apply_chat_template(tools_as_text(conversation), tokenize=False)


def test_a_template_with_tools_gets_them_through_its_tools_argument(pairs):
    tokenizer = build_tokenizer()
    tokenizer.chat_template = TOOL_TEMPLATE
    assert knows_tools(tokenizer.chat_template)
    text = render(tokenizer, pairs["messages"][1].chosen_conversation())
    assert "TOOLS: calculate_bmi check_drug_interaction<|im_end|>" in text
    assert 'CALL check_drug_interaction {"drug_a": "ibuprofen", "drug_b": "warfarin"}' in text
    assert "<tools>" not in text  # no fallback text
    text = render(tokenizer, pairs["messages"][0].chosen_conversation())
    assert '<|im_start|>tool\n{"bmi": 26.8' in text
    plain = render(tokenizer, pairs["messages"][3].chosen_conversation())
    assert "TOOLS" not in plain and plain.startswith("<|im_start|>user\n")


@pytest.mark.parametrize("template", ["chatml", "llama-3", "vicuna", "plain", "tools"])
def test_tool_replies_encode_after_the_generation_prompt(pairs, template):
    tokenizer = build_tokenizer()
    if template == "tools":
        tokenizer.chat_template = TOOL_TEMPLATE
    else:
        use_template(tokenizer, template, force=True)
    for pair in pairs["sharegpt"]:
        ids = encode_conversation(tokenizer, pair.chosen_conversation(), 2048)
        assert tokenizer.decode(ids) == render(tokenizer, pair.chosen_conversation())


def test_both_shapes_train_on_the_same_tokens(pairs):
    tokenizer = build_tokenizer()
    sharegpt, messages = (encode_pairs(tokenizer, pairs[shape], 2048) for shape in SHAPES)
    assert len(sharegpt) == 4 and sharegpt == messages
    assert all(ex["input_ids_chosen"] != ex["input_ids_rejected"] for ex in sharegpt)


def test_truncation_keeps_the_tools_and_drops_the_oldest_turn(pairs):
    tokenizer = build_tokenizer()
    conversation = pairs["sharegpt"][2].chosen_conversation()
    full = encode_conversation(tokenizer, conversation, 4096)
    text = tokenizer.decode(encode_conversation(tokenizer, conversation, len(full) - 1))
    assert "<tools>" in text and "What can I take instead?" in text
    assert "Can I take ibuprofen" not in text  # the first exchange, tool call and result went first


# ----------------------------------------------------------------------------- exports


def test_exports_round_trip_with_a_top_level_tools_field(pairs):
    for pair in pairs["sharegpt"]:
        record = json.loads(json.dumps(pair_record(pair.chosen_conversation(), pair.rejected_conversation())))
        assert ("tools" in record) == (tools_of(pair.prompt) is not None)
        assert all("tools" not in m for m in record["prompt"])
        again = parse_pair(record, "pairs.jsonl:1", format="trl")
        assert again.chosen_conversation() == pair.chosen_conversation()
        assert again.rejected_conversation() == pair.rejected_conversation()
    sft = sft_record(pairs["sharegpt"][0].chosen_conversation())
    assert sft["tools"][0]["function"]["name"] == "calculate_bmi" and "tools" not in sft["messages"][0]


# ----------------------------------------------------------------------------- prompts and sampling


@pytest.mark.parametrize("shape", SHAPES)
def test_tool_prompts_sample_with_tool_turns_as_fixed_history(shape):
    prompts = load_prompts(str(DATA / f"tool_prompts_{shape}.jsonl"))
    assert [p.id for p in prompts] == ["bmi", "drug", "swim"]
    bmi = prompts[0]
    # a conversation ending with a tool result is answered: the result is the turn
    assert [m["role"] for m in bmi.history] == ["system", "user", "assistant"] and bmi.turns[0]["role"] == "tool"
    assert prompts[1].turns == ["Can I take ibuprofen for my back pain? I am on warfarin."]
    tokenizer = build_tokenizer()
    cfg = SampleConfig(n=2, max_tokens=16)
    backend = FakeBackend()
    groups = sample_prompts(prompts, backend, make_policy(tokenizer, "tokenizer", cfg, backend.max_model_len), cfg)
    sent = [tokenizer.decode(ids) for ids in backend.calls[0][0]]
    assert '<tool_call>\n{"name": "calculate_bmi"' in sent[0] and "<tool_response>" in sent[0]
    assert "check_drug_interaction" in sent[1] and "<tools>" not in sent[2]
    for prompt, lines in zip(prompts, groups):
        for line in lines:
            assert line["messages"][: len(prompt.history)] == prompt.history
            assert line["messages"][-2:] == [
                prompt.turns[0] if isinstance(prompt.turns[0], dict) else {"role": "user", "content": prompt.turns[0]},
                {"role": "assistant", "content": line["turns"][0]["reply"]},
            ]


def test_tool_conversations_are_scored_and_evaluated(tiny_llama, capsys):
    from rmkit.cli import main
    from rmkit.config.sections import ScoreConfig
    from rmkit.scoring.reward_models import TransformersScorer

    scorer = TransformersScorer(ScoreConfig(reward_model=str(tiny_llama), max_length=2048))
    pairs = load_pairs(str(DATA / "tool_pairs_messages.jsonl"))
    rewards = scorer([c for p in pairs for c in (p.chosen_conversation(), p.rejected_conversation())])
    assert all(isinstance(r, float) for r in rewards) and len(set(rewards)) == len(rewards)
    main(["eval", str(tiny_llama), str(DATA / "tool_pairs_sharegpt.jsonl"), "--json", "--max-length", "2048"])
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["pairs"] == 4 and result["data_report"]["kept"] == 4


@pytest.mark.slow
def test_a_reward_model_trains_on_both_shapes(tiny_llama, tmp_path):
    from rmkit.config.recipe import load_recipe
    from rmkit.training.trainer import train

    recipe = load_recipe(
        None,
        [
            f"model.name_or_path={tiny_llama}",
            f"data.path={DATA}/tool_pairs_*.jsonl",
            f"train.output_dir={tmp_path}",
            "data.eval_fraction=0",
            "data.max_length=1024",
            "lora.r=8",
            "train.learning_rate=5e-3",
            "train.max_steps=12",
            "train.per_device_batch_size=4",
            "train.logging_steps=1",
            "train.warmup_ratio=0",
            "train.merge=false",
        ],
    )
    summary = train(recipe)
    assert summary["train_pairs"] == 8 and summary["data"]["kept"] == 8
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:2]) / 2  # it learns the tool-use preferences
