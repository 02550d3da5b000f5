"""The run folder: append per prompt, torn tails, fingerprints, shards and merge."""

import json

import pytest

from rmkit.config.fingerprint import differences, fingerprint
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import Recipe
from rmkit.data.data_report import DataReport
from rmkit.errors import ConfigError
from rmkit.sampling.pipeline import score_stage
from rmkit.sampling.runs import CandidateLog, RunFolder, merge_runs, parse_shard, read_log, shard_items


def group(pid, order=0, n=2):
    return [{"prompt_id": pid, "index": k, "n": n, "order": order, "reward": float(k)} for k in range(n)]


def write_log(path, groups):
    log = CandidateLog(path)
    for g in groups:
        log.append(g)
    return log


def test_log_appends_whole_prompts_and_reads_them_back(tmp_path):
    path = tmp_path / "candidates.jsonl"
    write_log(path, [group("a"), group("b")])
    groups, end = read_log(path)
    assert [g[0]["prompt_id"] for g in groups] == ["a", "b"] and end == path.stat().st_size
    assert CandidateLog(path).done == {"a", "b"}


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[:-7],  # a line torn mid-way
        lambda text: text[:-1],  # whole JSON, newline missing: the write may not have finished
        lambda text: "".join(text.splitlines(keepends=True)[:-1]),  # the prompt's last line lost
    ],
)
def test_a_torn_tail_is_cut_and_the_prompt_redone(tmp_path, damage):
    path = tmp_path / "candidates.jsonl"
    write_log(path, [group("a"), group("b")])
    path.write_text(damage(path.read_text()))
    log = CandidateLog(path)
    assert log.done == {"a"}
    assert path.read_text() == "".join(json.dumps(line) + "\n" for line in group("a"))  # tail cut on open
    log.append(group("b"))
    assert [g[0]["prompt_id"] for g in read_log(path)[0]] == ["a", "b"]


def test_damage_before_the_end_is_an_error(tmp_path):
    path = tmp_path / "candidates.jsonl"
    write_log(path, [group("a"), group("b")])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0][:10] + "\n" + "".join(lines[1:]))
    with pytest.raises(ValueError, match="damaged"):
        read_log(path)


def test_fingerprint_ignores_speed_settings_and_names_changes():
    base = Recipe()
    faster = load_recipe(
        None,
        [
            "sample.chunk_size=8",
            "sample.gpu_memory_utilization=0.9",
            "score.batch_size=64",
            "sample.executor=ray",
            "sample.workers=4",
        ],
    )
    assert fingerprint(base, ("sample", "score")) == fingerprint(faster, ("sample", "score"))
    hotter = load_recipe(None, ["sample.temperature=1.3", "score.reward_model=other"])
    changes = differences(fingerprint(base, ("sample", "score")), fingerprint(hotter, ("sample", "score")))
    assert changes == ["sample.temperature: 0.7 -> 1.3", "score.reward_model: '' -> 'other'"]
    assert fingerprint(base, ("sample",))["score"] is None


def test_fingerprint_of_a_reward_model_recipe_is_what_older_runs_recorded():
    legacy = fingerprint(load_recipe(None, ["score.reward_model=rm"]), ("sample", "score"))["score"]
    assert "scorers" not in legacy and "verifier_workers" not in legacy  # runs started before scorers existed resume
    several = load_recipe(None, ["score.scorers=[{name: a, verifier: math}]", "score.verifier_workers=4"])
    assert fingerprint(several, ("score",))["score"]["scorers"][0]["verifier"] == "math"
    assert differences(
        fingerprint(several, ("score",)),
        fingerprint(load_recipe(None, ["score.scorers=[{name: a, verifier: ifeval}]"]), ("score",)),
    )


def test_changed_recipe_is_refused_unless_overwrite(tmp_path):
    run = RunFolder(tmp_path / "run")
    recipe = Recipe()
    run.start(recipe, fingerprint(recipe, ("sample", "score")), None, overwrite=False)
    write_log(run.candidates, [group("a")])
    RunFolder(run.path).start(recipe, fingerprint(recipe, ("sample", "score")), None, overwrite=False)  # same: resumes
    assert run.candidates.exists()
    changed = load_recipe(None, ["sample.n=8"])
    with pytest.raises(ConfigError, match=r"(?s)sample\.n: 4 -> 8.*--overwrite"):
        RunFolder(run.path).start(changed, fingerprint(changed, ("sample", "score")), None, overwrite=False)
    with pytest.raises(ConfigError, match="shard"):
        RunFolder(run.path).start(recipe, fingerprint(recipe, ("sample", "score")), (0, 2), overwrite=False)
    RunFolder(run.path).start(changed, fingerprint(changed, ("sample", "score")), None, overwrite=True)
    assert not run.candidates.exists()
    assert load_recipe(run.recipe_path).sample.n == 8


def test_a_section_not_used_yet_is_adopted(tmp_path):
    recipe = load_recipe(None, ["score.reward_model=rm"])
    run = RunFolder(tmp_path / "run")
    run.start(recipe, fingerprint(recipe, ("sample",)), None, overwrite=False)  # `rmkit sample`
    RunFolder(run.path).start(recipe, fingerprint(recipe, ("sample", "score")), None, overwrite=False)
    assert RunFolder(run.path).state["fingerprint"]["score"]["reward_model"] == "rm"


def test_groups_come_in_prompt_order_whatever_order_they_were_appended_in(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    write_log(run.candidates, [group("p2", 2), group("p0", 0), group("p1", 1), group("p0", 0)])  # Ray: as chunks finish
    assert [g[0]["prompt_id"] for g in run.groups()] == ["p0", "p1", "p2"]


def test_shards_split_prompts_deterministically():
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) is None
    for bad in ("3/3", "x", "1-3", "-1/2"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    items = list(range(10))
    parts = [shard_items(items, (i, 3)) for i in range(3)]
    assert sorted(sum(parts, [])) == items and parts[1] == [1, 4, 7]


def make_shard(path, index, count, groups, recipe=None):
    recipe = recipe or Recipe()
    run = RunFolder(path)
    run.start(recipe, fingerprint(recipe, ("sample", "score")), (index, count), overwrite=False)
    run.state["prompts"] = {"total": 4, "in_shard": len(groups)}
    run.add_timing("sample", seconds=1.0, tokens=10)
    run.save()
    write_log(run.candidates, groups)
    return path


def test_merge_joins_shards_in_prompt_order(tmp_path):
    s0 = make_shard(tmp_path / "s0", 0, 2, [group("p0", 0), group("p2", 2)])
    s1 = make_shard(tmp_path / "s1", 1, 2, [group("p1", 1), group("p3", 3)])
    merged = merge_runs(tmp_path / "all", [s1, s0])
    assert [g[0]["prompt_id"] for g in merged.groups()] == ["p0", "p1", "p2", "p3"]
    assert merged.state["shard"] is None and merged.state["timings"]["sample"] == {"seconds": 2.0, "tokens": 20}
    with pytest.raises(ConfigError, match="already holds"):
        merge_runs(tmp_path / "all", [s0, s1])


def test_merge_refuses_incomplete_or_mismatched_shards(tmp_path):
    s0 = make_shard(tmp_path / "s0", 0, 2, [group("p0", 0), group("p2", 2)])
    with pytest.raises(ConfigError, match="missing"):
        merge_runs(tmp_path / "m1", [s0])
    unfinished = make_shard(tmp_path / "s1", 1, 2, [group("p1", 1)])
    run = RunFolder(unfinished)
    run.state["prompts"]["in_shard"] = 2
    run.save()
    with pytest.raises(ConfigError, match="unfinished"):
        merge_runs(tmp_path / "m2", [s0, unfinished])
    other = make_shard(tmp_path / "s1b", 1, 2, [group("p1", 1), group("p3", 3)], load_recipe(None, ["sample.seed=5"]))
    with pytest.raises(ConfigError, match="sample.seed"):
        merge_runs(tmp_path / "m3", [s0, other])


class CuttingScorer:
    """Scores every conversation 1.0 and, as a reward model's length limit would, drops one a call."""

    def __init__(self):
        self.report = DataReport()

    def __call__(self, conversations):
        self.report.dropped["reply_too_long"] += 1
        return [1.0] * len(conversations)


def test_rescoring_with_another_reward_model_counts_afresh(tmp_path):
    candidates = [
        {
            **line,
            "per_turn": "independent",
            "turns": [{"reply": "b"}],
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        }
        for line in group("a") + group("b", order=1)
    ]
    run = RunFolder(tmp_path / "run")
    run.start(Recipe(), fingerprint(Recipe(), ("sample",)), None, overwrite=False)
    write_log(run.candidates, [candidates[:2], candidates[2:]])
    for reward_model in ("first", "second"):
        score_stage(load_recipe(None, [f"score.reward_model={reward_model}"]), run, scorer=CuttingScorer())
        assert (
            run.state["timings"]["score"]["conversations"] == 4 and run.state["timings"]["score"]["dropped_reply_too_long"] == 1
        )
