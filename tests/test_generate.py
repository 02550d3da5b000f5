"""Multi-turn trajectories, per-turn mode and the history budget, with a fake backend."""

import pytest

from rmkit.config.sections import SampleConfig
from rmkit.conversation import Prompt, message
from rmkit.errors import ConfigError
from rmkit.sampling.candidates import through_turn
from rmkit.sampling.generate import make_policy, request_seed, sample_prompts, temperature
from tests.fakes import FakeBackend
from tests.tiny import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def two_turn(pid, category="writing"):
    return Prompt(id=pid, turns=[f"first question of {pid}", f"second question of {pid}"], category=category)


def run(prompts, tokenizer, score=None, max_model_len=1024, **overrides):
    cfg = SampleConfig(n=3, max_tokens=16, **overrides)
    backend = FakeBackend()
    backend.max_model_len = max_model_len
    policy = make_policy(tokenizer, "tokenizer", cfg, backend.max_model_len)
    return sample_prompts(prompts, backend, policy, cfg, score), backend


def test_each_candidate_continues_its_own_trajectory(tokenizer):
    prompts = [two_turn("a"), two_turn("b")]
    groups, backend = run(prompts, tokenizer)
    # One backend call per turn, every prompt's requests in it: n=3 for the shared turn 1,
    # then one request per trajectory.
    assert [(len(p), n) for p, _, n in backend.calls] == [(2, 3), (6, 1)]
    turn2_prompts = [tokenizer.decode(ids) for ids in backend.calls[1][0]]
    for (prompt, lines), start in zip(zip(prompts, groups), (0, 3)):
        replies = [line["turns"][0]["reply"] for line in lines]
        assert len(set(replies)) == 3
        for k, line in enumerate(lines):
            text = turn2_prompts[start + k]
            assert replies[k] in text and all(r not in text for j, r in enumerate(replies) if j != k)
            assert line["messages"] == [
                message("user", prompt.turns[0]),
                message("assistant", replies[k]),
                message("user", prompt.turns[1]),
                message("assistant", line["turns"][1]["reply"]),
            ]
            assert line["index"] == k and line["n"] == 3 and line["reward"] is None


def test_candidates_do_not_depend_on_the_batch(tokenizer):
    alone, _ = run([two_turn("b")], tokenizer)
    together, _ = run([two_turn("a"), two_turn("b"), two_turn("c")], tokenizer)
    assert together[1] == alone[0]
    first = together[1][0]["turns"][0]["reply"]
    assert first == f"s{request_seed(0, 'b', 0)}"  # child k of a request gets seed + k


def test_prompts_with_fewer_turns_stop_early(tokenizer):
    groups, backend = run([Prompt(id="one", turns=["only question"]), two_turn("two")], tokenizer)
    assert [len(line["turns"]) for line in groups[0]] == [1, 1, 1]
    assert [len(line["turns"]) for line in groups[1]] == [2, 2, 2]
    assert len(backend.calls[1][0]) == 3  # turn 2: only the two-turn prompt's trajectories


def test_per_turn_best_continues_from_the_best_reply(tokenizer):
    scored = []

    def score(conversations, records):  # the reward is the seed number in the reply: deterministic, distinct
        scored.append(conversations)
        assert [r["prompt_id"] for r in records] == ["a"] * 3 + ["b"] * 3
        return [{"reward": float(c[-1]["content"][1:]) % 1000} for c in conversations]

    groups, backend = run([two_turn("a"), two_turn("b")], tokenizer, score=score, per_turn="best")
    assert [(len(p), n) for p, _, n in backend.calls] == [(2, 3), (2, 3)]  # n new candidates per turn
    assert len(scored) == 2 and len(scored[0]) == 6  # every turn scored, in one batch
    turn2_prompts = [tokenizer.decode(ids) for ids in backend.calls[1][0]]
    for lines, text in zip(groups, turn2_prompts):
        turn1 = [line["turns"][0]["reward"] for line in lines]
        best = max(range(3), key=turn1.__getitem__)
        assert all(line["best_per_turn"] == [best] for line in lines)
        best_reply = lines[best]["turns"][0]["reply"]
        assert best_reply in text
        for line in lines:  # every final conversation goes through the best turn-1 reply
            assert line["messages"][1] == message("assistant", best_reply)
            assert line["reward"] == line["turns"][1]["reward"] is not None
            assert through_turn(line, 1) == line["messages"]
        assert through_turn(lines[0], 0)[-1] == message("assistant", lines[0]["turns"][0]["reply"])
        final = [line["reward"] for line in lines]
        assert [line["selected"] for line in lines] == [k == max(range(3), key=final.__getitem__) for k in range(3)]


def test_per_turn_best_needs_a_scorer(tokenizer):
    with pytest.raises(ValueError, match="reward model"):
        run([two_turn("a")], tokenizer, per_turn="best")


def test_trimming_is_counted_in_the_turn_record(tokenizer):
    prompt = Prompt(id="long", turns=["tell me " * 40, "and now?"])
    probe, _ = run([prompt], tokenizer)
    turn1, turn2 = (probe[0][0]["turns"][t]["prompt_tokens"] for t in (0, 1))
    # A budget (max_model_len - max_tokens) that holds turn 1 but not turn 1 + reply + turn 2.
    groups, _ = run([prompt], tokenizer, max_model_len=16 + turn1)
    for line in groups[0]:
        assert line["turns"][0]["dropped_turns"] == 0 and line["turns"][0]["prompt_tokens"] == turn1
        assert line["turns"][1]["dropped_turns"] == 1 and line["turns"][1]["prompt_tokens"] < turn2
        assert line["turns"][1]["cut_tokens"] == 0
        assert line["messages"][0]["content"] == prompt.turns[0]  # the record keeps the whole conversation


def test_policy_stops_and_category_temperatures(tokenizer):
    cfg = SampleConfig(stop=["###"], stop_token_ids=[7])
    policy = make_policy(tokenizer, "tokenizer", cfg, max_model_len=1024)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in policy.stop_token_ids and 7 in policy.stop_token_ids
    assert policy.stop == ("###",)  # a special-token stop is stopped on by id
    assert policy.budget == 1024 - cfg.max_tokens
    preset = SampleConfig(temperature=0.9, category_temperature="mt_bench")
    assert [temperature(preset, c) for c in ("math", "writing", "stem", "other")] == [0.0, 0.7, 0.1, 0.9]
    assert temperature(SampleConfig(category_temperature={"math": 0.3}), "math") == 0.3
    with pytest.raises(ConfigError, match="unknown preset"):
        temperature(SampleConfig(category_temperature="nope"), "math")
    with pytest.raises(ConfigError, match="no room"):
        make_policy(tokenizer, "tokenizer", SampleConfig(max_tokens=2000), max_model_len=1024)


def test_category_temperature_reaches_the_backend(tokenizer):
    _, backend = run([two_turn("a", "math"), two_turn("b", "writing")], tokenizer, category_temperature="mt_bench")
    assert [p.temperature for p in backend.calls[0][1]] == [0.0, 0.7]
