"""Verifier scorers and the weighted scorer set: known replies from the checkers' own tests,
strict vs loose, failures counted, weighted selection and per-scorer stats. No model."""

import itertools
import random
import statistics
import sys
import types

import pytest

from rmkit.config.sections import ScoreConfig, ScorerSpec, SelectConfig
from rmkit.conversation import message
from rmkit.data.formats import parse_prompt
from rmkit.errors import ConfigError
from rmkit.sampling.candidates import score_groups
from rmkit.scoring.scorer_set import ScorerSet, scorer_specs
from rmkit.scoring.verifiers import NEEDS_NLTK_DATA, VerifierPool, build_constraints, ifeval_score, math_score
from rmkit.selection.best_of_n import bootstrap_interval, expected_at_best, expected_max, selection_curve
from rmkit.selection.select import select_group, summarize

pytest.importorskip("if_verifiable")

# Replies and expected verdicts from google-research instruction_following_eval/instructions_test.py
# (Apache-2.0), the tests of the checkers if-verifiable packages.
PLACEHOLDERS = (
    "Sure, here is a short template with 5 placeholders:\n[Name]\n[Email]\n[Phone]\n[Address]\n[Website]\n"
    "This template can be used for a variety of purposes, such ascreating a contact list, sending out surveys, "
    "or creating a sign-up form."
)
HIGHLIGHTED_2 = (
    "\n  Sure, here are the numerical methods for solving partial differential\n  equations highlighted with Markdown:\n"
    "  *Finite difference methods\n  *Finite element methods*\n  *Boundary element methods\n  *Monte Carlo methods\n"
    "  I hope this helps!"
)
HIGHLIGHTED_3 = (
    "\n  There is allowed to be *two different* highlighted *sections in the same*\n"
    "  line. **This is also true** for **double markdown highlights.**\n  "
)
SECTIONS_2 = "SECTION 1\n  [content of section 1]\n  SECTION 2\n  [content of section 2]"
PARAGRAPHS_4 = "\n  paragraph 1\n          ***\n      paragraph 2\n          ***\n          ***"
POSTSCRIPT_1 = (
    '\n  I will do my best to follow your instructions and always start my responses\n  with "My response is:". '
    "I will try to be as consistent as possible, but\n  please be patient with me if I make a mistake. I am still "
    "under development,\n  and I am always learning new things.\n\n  P.S. I hope this is what you were looking for."
)
KNOWN = [  # (instruction id, kwargs, reply, followed)
    ("detectable_content:number_placeholders", {"num_placeholders": 5}, PLACEHOLDERS, True),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 7},
        "My [adjective] [noun] is [adjective] [noun]. I [verb] and [verb].",
        False,
    ),
    ("detectable_format:constrained_response", {}, "My answer is no.   ", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, HIGHLIGHTED_2, False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 4}, HIGHLIGHTED_3, True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2}, SECTIONS_2, True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, PARAGRAPHS_4, False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, POSTSCRIPT_1, True),
    ("detectable_content:postscript", {"postscript_marker": "PS:"}, POSTSCRIPT_1, False),
    ("language:response_language", {"language": "en"}, "The response is English", True),
]


def conversation(reply: str, prompt: str = "Answer me.") -> list[dict]:
    return [message("user", prompt), message("assistant", reply)]


@pytest.mark.parametrize("instruction, kwargs, reply, followed", KNOWN)
def test_ifeval_known_cases(instruction, kwargs, reply, followed):
    record = {"instruction_id_list": [instruction], "kwargs": [kwargs]}
    assert ifeval_score(record, conversation(reply)) == float(followed)


def test_ifeval_score_is_the_fraction_followed_and_loose_forgives_a_first_line():
    record = {"instruction_id_list": ["startend:quotation", "punctuation:no_comma"], "kwargs": [{}, {}]}
    reply = 'Here you go:\n"Paris is the capital of France"'
    assert ifeval_score(record, conversation(reply)) == 0.5  # no comma: followed; not wrapped in quotes
    assert ifeval_score(record, conversation(reply), loose=True) == 1.0  # IFEval's loose drops the first line
    assert ifeval_score(record, conversation('"Paris, France"')) == 0.5


def test_ifeval_refuses_records_it_cannot_check():
    with pytest.raises(ValueError, match="no instruction_id_list"):
        ifeval_score({}, conversation("hi"))
    with pytest.raises(ValueError, match="unknown IFEval instruction 'keywords:nope'"):
        ifeval_score({"instruction_id_list": ["keywords:nope"], "kwargs": [{}]}, conversation("hi"))


@pytest.mark.parametrize(
    "answer, reply, expected",
    [("1/2", "So the answer is $\\frac{1}{2}$.", 1.0), ("0.5", "$\\frac{1}{2}$", 1.0), ("3", "The answer is $4$.", 0.0)],
)
def test_math_known_cases(answer, reply, expected):
    pytest.importorskip("math_verify")
    assert math_score({"answer": answer}, conversation(reply)) == expected


def test_build_constraints_is_seeded_conflict_free_and_checkable():
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_CONFLICTS, conflict_make

    conflicts = conflict_make({k: set(v) for k, v in INSTRUCTION_CONFLICTS.items()})
    seen = set()
    for seed in range(40):
        built = build_constraints(random.Random(seed), 3, "What is a cat?")
        assert built == build_constraints(random.Random(seed), 3, "What is a cat?")
        ids = built["instruction_id_list"]
        assert 1 <= len(ids) <= 3 and len(built["kwargs"]) == len(ids) == len(built["descriptions"])
        assert not set(ids) & set(NEEDS_NLTK_DATA)
        assert all(b not in conflicts[a] for a, b in itertools.combinations(ids, 2))
        seen |= set(ids)
        score = ifeval_score(built, conversation("A cat is a small animal.", "What is a cat?"))
        assert 0.0 <= score <= 1.0
    assert len(seen) > 15  # the draw covers most of the 23 checkers


def test_prompt_records_keep_the_verifier_fields():
    record = {
        "id": "p",
        "messages": [message("user", "hi")],
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
        "answer": "2",
    }
    prompt = parse_prompt(record, "f.jsonl:1")
    assert prompt.extra == {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}], "answer": "2"}


def test_scorer_specs_default_and_errors():
    assert [(s.name, s.reward_model) for s in scorer_specs(ScoreConfig(reward_model="rm"))] == [("reward", "rm")]
    with pytest.raises(ConfigError, match="score.reward_model is not set"):
        scorer_specs(ScoreConfig())
    with pytest.raises(ConfigError, match=r"scorers\[1\].name: 'a' is used twice"):
        scorer_specs(ScoreConfig(scorers=[ScorerSpec(name="a", verifier="math"), ScorerSpec(name="a", verifier="ifeval")]))
    with pytest.raises(ConfigError, match=r"scorers\[0\] \(a\): set exactly one of"):
        scorer_specs(ScoreConfig(scorers=[ScorerSpec(name="a", verifier="math", function="m:f")]))


@pytest.fixture
def user_module(monkeypatch):
    module = types.ModuleType("my_scorers")

    def shortness(record, messages):
        if "boom" in messages[-1]["content"]:
            raise RuntimeError("cannot score this one")
        return -len(messages[-1]["content"]) / 100

    module.shortness = shortness
    monkeypatch.setitem(sys.modules, "my_scorers", module)


def lines(replies: list[str]) -> list[dict]:
    extra = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    return [
        {
            "prompt_id": "p",
            "category": "",
            "index": k,
            "n": len(replies),
            "per_turn": "independent",
            "messages": conversation(reply),
            "turns": [{"reply": reply, "tokens": len(reply)}],
            "reward": None,
            "selected": False,
            "extra": extra,
            "source": "f:1",
        }
        for k, reply in enumerate(replies)
    ]


def test_weighted_scorers_select_and_report_each_scorer(user_module):
    cfg = ScoreConfig(
        verifier_workers=0,
        scorers=[
            ScorerSpec(name="gold", verifier="ifeval", weight=1.0),
            ScorerSpec(name="short", function="my_scorers:shortness", weight=0.5),
        ],
    )
    scorers = ScorerSet(cfg)
    group = lines(["yes, a comma here", "no comma at all but long enough", "boom no comma"])
    score_groups([group], scorers)
    assert [line["scores"]["gold"] for line in group] == [0.0, 1.0, 1.0]
    assert group[2]["scores"]["short"] == 0.0 and "RuntimeError" in group[2]["errors"]["short"]
    assert scorers.failures == {"short": 1}
    # weighted sum: 1.0 * gold + 0.5 * short
    assert group[1]["reward"] == pytest.approx(1.0 - 0.5 * len(group[1]["messages"][-1]["content"]) / 100)
    assert group[2]["reward"] == 1.0 and [line["selected"] for line in group] == [False, False, True]
    selection = select_group(group, SelectConfig())
    stats = summarize([group], [selection])
    gold = stats["per_scorer"]["gold"]
    assert gold["mean_all"] == pytest.approx(2 / 3) and gold["mean_selected"] == 1.0 and gold["failed"] == 0
    assert stats["per_scorer"]["short"]["failed"] == 1


def test_a_failing_verifier_scores_zero_and_is_counted():
    scorers = ScorerSet(ScoreConfig(verifier_workers=0, scorers=[ScorerSpec(name="m", verifier="math")]))
    results = scorers([conversation("4"), conversation("4")], [{"answer": "4"}, {}])
    assert results[0]["reward"] == 1.0 and "errors" not in results[0]
    assert results[1]["reward"] == 0.0 and "no answer" in results[1]["errors"]["m"]
    assert scorers.failures == {"m": 1}


def test_a_function_returning_nan_or_no_number_is_a_failed_score_not_a_nan_reward(monkeypatch):
    module = types.ModuleType("odd_scorers")
    returns = {"nan": float("nan"), "inf": float("-inf"), "text": "0.5", "none": None, "fine": 0.25, "true": True}

    def odd(record, messages):
        if record["kind"] == "raise":
            raise KeyError("kind")
        return returns[record["kind"]]

    module.odd = odd
    monkeypatch.setitem(sys.modules, "odd_scorers", module)
    scorers = ScorerSet(ScoreConfig(verifier_workers=0, scorers=[ScorerSpec(name="odd", function="odd_scorers:odd")]))
    kinds = [*returns, "raise"]
    results = scorers([conversation("x")] * len(kinds), [{"kind": kind} for kind in kinds])
    by_kind = dict(zip(kinds, results))
    assert by_kind["fine"] == {"reward": 0.25, "scores": {"odd": 0.25}} and by_kind["true"]["reward"] == 1.0
    for kind in ("nan", "inf", "text", "none", "raise"):
        assert by_kind[kind]["reward"] == 0.0 and by_kind[kind]["scores"] == {"odd": 0.0}, kind
    assert "ValueError: the scorer returned nan, not a finite number" == by_kind["nan"]["errors"]["odd"]
    assert "TypeError: the scorer returned str '0.5', not a number" == by_kind["text"]["errors"]["odd"]
    assert "TypeError: the scorer returned NoneType None, not a number" == by_kind["none"]["errors"]["odd"]
    assert scorers.failures == {"odd": 5}


@pytest.mark.slow
def test_verifier_pool_matches_the_main_process():
    items = [("ifeval", {"instruction_id_list": [i], "kwargs": [k]}, conversation(r)) for i, k, r, _ in KNOWN]
    items.append(("ifeval", {}, conversation("no record fields")))
    pool = VerifierPool(2)
    try:
        assert pool.run(items) == VerifierPool(0).run(items)
    finally:
        pool.close()


@pytest.mark.slow
def test_verifiers_called_from_another_thread_check_in_a_process():
    """math-verify times its parsing with signal.alarm, main thread only: from rmkit serve's scoring
    thread the checks go to a process."""
    from concurrent.futures import ThreadPoolExecutor

    items = [("math", {"answer": "1/2"}, conversation("The answer is $\\frac{1}{2}$."))]
    pool = VerifierPool(0)
    try:
        with ThreadPoolExecutor(1) as thread:
            assert thread.submit(pool.run, items).result() == pool.run(items) == [(1.0, None)]
    finally:
        pool.close()


def test_expected_at_best_is_the_mean_over_all_subsets():
    keys, values = [0.3, 0.9, 0.1, 0.9, 0.5], [1.0, 0.0, 0.5, 1.0, 0.25]
    for k in range(1, 6):
        picks = []
        for subset in itertools.combinations(range(5), k):
            best = min(subset, key=lambda i: (-keys[i], i))  # ties to the lower index, as selection
            picks.append(values[best])
        assert expected_at_best(keys, values, k) == pytest.approx(statistics.fmean(picks))
    assert expected_at_best(values, values, 3) == pytest.approx(expected_max(values, 3))


def test_selection_curves_and_bootstrap():
    prompts = [{"proxy": [0.0, 1.0], "gold": [0.0, 1.0]}, {"proxy": [1.0, 0.0], "gold": [0.0, 1.0]}] * 5
    proxy = selection_curve(prompts, "proxy", "gold", [1, 2], rounds=200)
    random_pick = selection_curve(prompts, None, "gold", [1, 2], rounds=200)
    oracle = selection_curve(prompts, "gold", "gold", [1, 2], rounds=200)
    assert [r["mean"] for r in proxy] == [0.5, 0.5] and [r["mean"] for r in random_pick] == [0.5, 0.5]
    assert [r["mean"] for r in oracle] == [0.5, 1.0] and oracle[1]["low"] == oracle[1]["high"] == 1.0
    low, high = bootstrap_interval([0.0, 1.0] * 20, rounds=500)
    assert 0.25 < low < 0.5 < high < 0.75


def test_ifbench_verifier_checks_ifbench_constraints():
    pytest.importorskip("if_verifiable")
    from rmkit.scoring.verifiers import BUILT_IN

    record = {
        "instruction_id_list": ["count:keywords_multiple"],
        "kwargs": [
            {
                "keyword1": "kaleidoscope",
                "keyword2": "nebula",
                "keyword3": "whisper",
                "keyword4": "labyrinth",
                "keyword5": "paradox",
            }
        ],
    }
    words = "kaleidoscope " + "nebula " * 2 + "whisper " * 3 + "labyrinth " * 5 + "paradox " * 7
    follows = [{"role": "user", "content": "Write."}, {"role": "assistant", "content": words}]
    fails = [{"role": "user", "content": "Write."}, {"role": "assistant", "content": "kaleidoscope only"}]
    assert BUILT_IN["ifbench"](record, follows) == 1.0 and BUILT_IN["ifbench"](record, fails) == 0.0
    with pytest.raises(ValueError, match="unknown IFBench instruction"):
        BUILT_IN["ifbench"]({"instruction_id_list": ["nope"], "kwargs": [{}]}, follows)


def test_ifbench_checkers_load_without_printing():
    """if-verifiable's IFBench module tries NLTK downloads on import; offline they printed four error lines."""
    pytest.importorskip("if_verifiable")
    import subprocess

    code = (
        "from rmkit.scoring.verifiers import BUILT_IN; "
        "m = [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'a b'}];"
        "print(BUILT_IN['ifbench']({'instruction_id_list': ['count:word_count_range'], "
        "'kwargs': [{'min_words': 1, 'max_words': 5}]}, m))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1.0\n" and "nltk" not in result.stderr
