"""The candidate record's helpers, on hand-written records."""

from rmkit.conversation import Prompt, message
from rmkit.sampling.candidates import (
    history_length,
    new_candidates,
    prompt_messages,
    rank_all,
    sampled_messages,
    through_turn,
)

TOOL_RESULT = {"role": "tool", "content": '{"bmi": 26.8}'}


def two_turn_record():
    prompt = Prompt(id="q1", turns=["Hi", "And?"], history=[message("system", "Be brief.")], category="chat")
    (record,) = new_candidates(prompt, 1, "independent")
    record["messages"] += [
        message("user", "Hi"),
        message("assistant", "Hello."),
        message("user", "And?"),
        message("assistant", "Bye."),
    ]
    record["turns"] = [{"reply": "Hello.", "reward": 0.1}, {"reply": "Bye.", "reward": 0.2}]
    return record


def test_new_candidates_start_from_the_prompt_history():
    prompt = Prompt(id="q1", turns=["Hi"], history=[message("system", "S")], extra={"question_id": 81})
    records = new_candidates(prompt, 3, "best")
    assert [r["index"] for r in records] == [0, 1, 2] and {r["n"] for r in records} == {3}
    assert all(r["messages"] == [message("system", "S")] and r["messages"] is not prompt.history for r in records)
    assert records[0]["extra"] == {"question_id": 81} and records[0]["per_turn"] == "best"


def test_history_sampled_and_prompt_messages():
    record = two_turn_record()
    assert history_length(record) == 1
    assert sampled_messages(record) == record["messages"][1:]
    assert prompt_messages(record) == [message("system", "Be brief."), message("user", "Hi"), message("user", "And?")]
    assert through_turn(record, 0) == record["messages"][:3]
    assert through_turn(record, 1) == record["messages"]


def test_a_tool_result_turn_is_part_of_the_prompt():
    history = [message("user", "BMI for 1.75 m, 82 kg?"), {"role": "assistant", "content": "", "tool_calls": []}]
    (record,) = new_candidates(Prompt(id="t", turns=[TOOL_RESULT], history=history), 1, "independent")
    record["messages"] += [TOOL_RESULT, message("assistant", "26.8: overweight.")]
    record["turns"] = [{"reply": "26.8: overweight.", "reward": None}]
    assert history_length(record) == 2 and prompt_messages(record) == [*history, TOOL_RESULT]


def test_rank_all_puts_the_unscored_last_in_order():
    assert rank_all([0.5, None, 2.0, 0.5, None]) == [2, 0, 3, 1, 4]
    assert rank_all([None, None]) == [0, 1] and rank_all([]) == []
