"""Selection among a prompt's candidates and the files written from it: plain data, no model."""

import pytest

from rmkit.config.sections import SelectConfig
from rmkit.conversation import message
from rmkit.selection import exports
from rmkit.selection.select import (
    best_index,
    format_summary,
    mark_selected,
    random_index,
    random_indices,
    ranking,
    select,
    summarize,
)


def test_ranking_and_best_break_ties_by_lower_index_and_skip_unscored():
    rewards = [0.5, None, 2.0, 2.0, -1.0]
    assert ranking(rewards) == [2, 3, 0, 4]
    assert best_index(rewards) == 2
    assert best_index([None, None]) == 0


def test_select_best_top_k_and_pair():
    rewards = [0.1, 0.9, -0.4, 0.5]
    sel = select(rewards, ["a", "b", "c", "d"], SelectConfig(top_k=2), "p1")
    assert sel.best == 1 == max(range(4), key=rewards.__getitem__)
    assert sel.kept == [1, 3]
    assert sel.pair == (1, 2) and sel.no_pair == ""
    assert sel.random in range(4) and not sel.identical


def test_random_pick_depends_on_seed_and_prompt_not_order():
    picks = {random_index(0, f"p{i}", [0, 1, 2, 3]) for i in range(40)}
    assert picks == {0, 1, 2, 3}  # spread over the candidates
    assert random_index(0, "p7", [0, 1, 2, 3]) == random_index(0, "p7", [0, 1, 2, 3])
    assert random_index(0, "p7", [1, 3]) in (1, 3)  # only among the scored ones


def test_pairs_need_a_margin_and_min_reward():
    texts = ["a", "b", "c"]
    assert select([1.0, 0.95, 0.9], texts, SelectConfig(min_margin=0.5), "p").no_pair == "margin"
    assert select([1.0, 1.0, 1.0], texts, SelectConfig(), "p").no_pair == "margin"  # no preference at all
    below = select([1.0, 0.2, 0.1], texts, SelectConfig(min_reward=2.0), "p")
    assert below.kept == [] and below.pair is None and below.no_pair == "min_reward"
    assert select([1.0, 0.2, 0.1], texts, SelectConfig(min_reward=0.15), "p").kept == [0]


def test_identical_candidates_are_flagged_and_give_no_pair():
    sel = select([0.3, 0.1, 0.2], ["same"] * 3, SelectConfig(), "p")
    assert sel.identical and sel.pair is None and sel.no_pair == "identical"
    assert sel.best == 0  # still a best-of-N answer


def test_unscored_prompt_selects_nothing():
    sel = select([None, None], ["a", "b"], SelectConfig(), "p")
    assert (sel.best, sel.random, sel.kept, sel.pair, sel.no_pair) == (None, None, [], None, "unscored")


def test_mark_selected_flags_the_argmax():
    group = [{"index": k, "reward": r} for k, r in enumerate([0.2, 0.7, 0.7])]
    mark_selected(group)
    assert [line["selected"] for line in group] == [False, True, False]


def test_summarize_means_are_matched_over_scored_prompts():
    def group(pid, category, rewards):
        return [
            {"prompt_id": pid, "category": category, "index": k, "reward": r, "turns": [{"tokens": 10 * (k + 1)}, {"tokens": 1}]}
            for k, r in enumerate(rewards)
        ]

    groups = [group("a", "math", [1.0, 3.0]), group("b", "writing", [0.0, 2.0]), group("c", "math", [None, None])]
    cfg = SelectConfig()
    selections = [select([c["reward"] for c in g], [str(c["index"]) for c in g], cfg, g[0]["prompt_id"]) for g in groups]
    stats = summarize(groups, selections)
    assert stats["prompts"] == 3 and stats["candidates"] == 6 and stats["scored_prompts"] == 2
    assert stats["mean_reward_all"] == pytest.approx(1.5)
    assert stats["mean_reward_selected"] == pytest.approx(2.5)
    random_mean = (groups[0][selections[0].random]["reward"] + groups[1][selections[1].random]["reward"]) / 2
    assert stats["mean_reward_random"] == pytest.approx(random_mean)
    assert stats["lift_over_random"] == pytest.approx(2.5 - random_mean)
    assert stats["unscored_candidates"] == 2
    # reply tokens (both turns): candidate k has 10(k+1) + 1; the best is index 1 in both scored groups
    assert stats["mean_tokens_all"] == pytest.approx(16.0) and stats["mean_tokens_selected"] == pytest.approx(21.0)
    assert stats["mean_tokens_random"] == pytest.approx(sum(10 * (s.random + 1) + 1 for s in selections[:2]) / 2)
    summary = format_summary({**stats, "sft_written": 2, "pairs_written": 2, "timings": {}}, "run")
    assert "(lift over random" in summary and "mean reply tokens: all 16, random pick" in summary and "selected 21" in summary
    assert stats["per_category"]["math"] == {
        "prompts": 1,
        "mean_reward_all": 2.0,
        "mean_reward_random": groups[0][selections[0].random]["reward"],
        "mean_reward_selected": 3.0,
    }


# --- exports: written from the selected conversations ---------------------------------


def test_pair_record_splits_at_the_last_shared_user_turn():
    u1, u2 = message("user", "q1"), message("user", "q2")
    chosen = [u1, message("assistant", "good 1"), u2, message("assistant", "good 2")]
    rejected = [u1, message("assistant", "bad 1"), u2, message("assistant", "bad 2")]
    record = exports.pair_record(chosen, rejected)
    assert record == {"prompt": [u1], "chosen": chosen[1:], "rejected": rejected[1:]}  # trajectories differ from turn 1
    same_start = [u1, message("assistant", "good 1"), u2, message("assistant", "bad 2")]
    assert exports.pair_record(chosen, same_start)["prompt"] == chosen[:3]  # per-turn mode: a shared history


def test_mt_bench_answers_are_sorted_unique_and_fastchat_shaped():
    def exchanges(a, b):
        return [message("user", "q"), message("assistant", a), message("user", "q2"), message("assistant", b)]

    records = exports.mt_bench_answers(
        [("102", exchanges("x", "y")), (81, exchanges("a", "b")), (81, exchanges("c", "d"))], "m", 1.5
    )
    assert [r["question_id"] for r in records] == [81, 102]
    assert records[0]["choices"] == [{"index": 0, "turns": ["a", "b"]}]
    assert set(records[0]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
    assert records[0]["model_id"] == "m" and records[0]["tstamp"] == 1.5 and len(records[0]["answer_id"]) == 22
    again = exports.mt_bench_answers([(81, exchanges("a", "b"))], "m", 2.0)
    assert again[0]["answer_id"] == records[0]["answer_id"]  # stable across rewrites


def test_alpaca_eval_output_keeps_the_instruction_as_given():
    messages = [message("user", "Do X\n\nwith Y"), message("assistant", "done")]
    record = exports.alpaca_eval_output(messages, {"instruction": "Do X", "input": "with Y", "dataset": "helpful_base"}, "gen")
    assert record == {
        "instruction": "Do X",
        "input": "with Y",
        "output": "done",
        "generator": "gen",
        "dataset": "helpful_base",
        "datasplit": "eval",
    }
    plain = exports.alpaca_eval_output(messages, {}, "gen", dataset="cat")
    assert plain["instruction"] == "Do X\n\nwith Y" and plain["input"] == "" and plain["dataset"] == "cat"


def test_random_pick_control_keeps_as_many_random_candidates_of_the_same_prompts():
    import random

    rng = random.Random(1)
    groups = {f"p{i}": [rng.choice([0.0, 0.5, 1.0, None]) for _ in range(6)] for i in range(200)}
    texts = [str(k) for k in range(6)]
    best_cfg = SelectConfig(top_k=2, min_reward=0.5)
    random_cfg = SelectConfig(top_k=2, min_reward=0.5, pick="random")
    differ = 0
    for prompt_id, rewards in groups.items():
        best, control = select(rewards, texts, best_cfg, prompt_id), select(rewards, texts, random_cfg, prompt_id)
        assert len(control.kept) == len(best.kept)  # same prompts (the floor applies to both), same count
        scored = [k for k, r in enumerate(rewards) if r is not None]
        assert set(control.kept) <= set(scored) and len(set(control.kept)) == len(control.kept)
        assert control.kept == select(rewards, texts, random_cfg, prompt_id).kept  # seeded
        assert not control.kept or control.kept[0] == control.random  # the stats' random pick is the kept one
        differ += control.kept != best.kept
    assert differ > 100  # random, not the best
    # drawn from all scored candidates, those below the floor too: the control does not filter by reward
    controls = {p: select(r, texts, random_cfg, p) for p, r in groups.items()}
    assert any(groups[p][s.kept[0]] == 0.0 for p, s in controls.items() if s.kept)


def test_random_indices_are_distinct_and_start_with_the_random_pick():
    picks = random_indices(3, "q", [0, 2, 4, 6, 8], 3)
    assert len(set(picks)) == 3 and set(picks) <= {0, 2, 4, 6, 8}
    assert picks[0] == random_index(3, "q", [0, 2, 4, 6, 8])
    assert random_indices(3, "q", [1, 2], 5) == random_indices(3, "q", [1, 2], 2) and random_indices(3, "q", [1], 0) == []


def test_keep_ties_keeps_every_distinct_candidate_at_the_top_reward():
    rewards = [1.0, 0.0, 1.0, 1.0, 0.5]
    texts = ["a", "b", "c", "a", "d"]  # candidate 3 repeats candidate 0
    assert select(rewards, texts, SelectConfig(), "p").kept == [0]
    assert select(rewards, texts, SelectConfig(keep_ties=True), "p").kept == [0, 2]
    assert select(rewards, texts, SelectConfig(keep_ties=True, top_k=3), "p").kept == [0, 2, 3]
    control = select(rewards, texts, SelectConfig(keep_ties=True, pick="random"), "p")
    assert len(control.kept) == 2
