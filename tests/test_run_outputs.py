"""What `rmkit select` writes and when it is out of date, on a hand-written run folder (no model):
FastChat's answer layout, outputs marked stale by a re-score, the prompt counts."""

import glob
import json
import os

from rmkit.cli import main
from rmkit.config.fingerprint import fingerprint
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import SampleConfig
from rmkit.sampling.pipeline import load_run_prompts, select_stage
from rmkit.sampling.runs import CandidateLog, RunFolder
from rmkit.selection.select import random_index

N = 2
QUESTION_IDS = (81, 82, 83)


def load_model_answers(answer_dir):
    """FastChat's fastchat.llm_judge.common.load_model_answers (fschat 0.2.36), whose module imports
    openai and anthropic: every *.jsonl in the folder is a model, named by the file."""
    model_answers = {}
    for filename in sorted(glob.glob(os.path.join(answer_dir, "*.jsonl"))):
        answer = {}
        with open(filename) as fin:
            for line in fin:
                line = json.loads(line)
                answer[line["question_id"]] = line
        model_answers[os.path.basename(filename)[:-6]] = answer
    return model_answers


def reply_length(record, messages):
    """A scorer function (`module:function`) for the re-score: the reply's length."""
    return float(len(messages[-1]["content"]))


def make_run(path, *overrides):
    """A scored two-turn run of three MT-bench questions, as sample-and-score leaves it before select."""
    recipe = load_recipe(None, ["sample.policy=my-policy", f"sample.n={N}", "select.exports=[mt_bench]", *overrides])
    run = RunFolder(path)
    run.start(recipe, fingerprint(recipe, ("sample", "score")), None, overwrite=False)
    log = CandidateLog(run.candidates)
    for order, qid in enumerate(QUESTION_IDS):
        group = []
        for k in range(N):
            replies = [f"answer {qid}.{k} turn {t}" + "!" * k for t in (1, 2)]
            messages = [
                m
                for t, reply in enumerate(replies)
                for m in ({"role": "user", "content": f"q{qid} turn {t}"}, {"role": "assistant", "content": reply})
            ]
            turns = [
                {
                    "reply": r,
                    "tokens": 4,
                    "finish_reason": "stop",
                    "prompt_tokens": 9,
                    "dropped_turns": 0,
                    "cut_tokens": 0,
                    "reward": None,
                }
                for r in replies
            ]
            group.append(
                {
                    "prompt_id": str(qid),
                    "category": "writing",
                    "index": k,
                    "n": N,
                    "per_turn": "independent",
                    "messages": messages,
                    "turns": turns,
                    "best_per_turn": [],
                    "reward": float(-k),
                    "selected": k == 0,
                    "extra": {"question_id": qid},
                    "source": f"question.jsonl:{order + 1}",
                    "order": order,
                }
            )
        log.append(group)
    return recipe, run


def test_mt_bench_answers_are_in_fastchats_layout_and_load_as_one_model(tmp_path):
    recipe, run = make_run(tmp_path / "run")
    select_stage(recipe, run, quiet=True)
    answers = load_model_answers(run.path / "model_answer")
    assert list(answers) == ["my-policy-bo2"] and sorted(answers["my-policy-bo2"]) == list(QUESTION_IDS)
    first = answers["my-policy-bo2"][81]
    assert first["model_id"] == "my-policy-bo2" and first["choices"][0]["turns"] == ["answer 81.0 turn 1", "answer 81.0 turn 2"]
    assert not (run.path / "mt_bench_answers.jsonl").exists()

    renamed = load_recipe(run.recipe_path, ["select.model_id=bo2-renamed"])
    select_stage(renamed, run, quiet=True)
    assert list(load_model_answers(run.path / "model_answer")) == ["bo2-renamed"]  # the old name's file goes


def test_a_model_id_that_is_no_file_name_is_refused(tmp_path, capsys):
    recipe, run = make_run(tmp_path / "run")
    assert main(["select", str(run.path), "select.model_id=org/model"]) == 2
    assert "select.model_id='org/model': it names the FastChat answer file" in capsys.readouterr().err
    assert not (run.path / "sft.jsonl").exists()  # refused as the recipe was read, before anything was written


def test_rescoring_marks_the_selected_outputs_stale_until_select(tmp_path, capsys):
    _, run = make_run(tmp_path / "run")
    assert main(["select", str(run.path)]) == 0
    sft_before = (run.path / "sft.jsonl").read_text()
    capsys.readouterr()

    scorer = "score.scorers=[{name: length, function: 'tests.test_run_outputs:reply_length'}]"
    assert main(["score", str(run.path), scorer]) == 0
    err = capsys.readouterr().err
    assert "sft.jsonl, pairs.jsonl, stats.json, model_answer in" in err and f"`rmkit select {run.path}`" in err
    state = json.loads((run.path / "run.json").read_text())
    assert state["stale_outputs"] == ["sft.jsonl", "pairs.jsonl", "stats.json", "model_answer"]
    assert (run.path / "sft.jsonl").read_text() == sft_before  # left as it was, but said so
    rescored = RunFolder(run.path).groups()
    assert [line["reward"] for line in rescored[0]] == [18.0, 19.0]  # the longer reply wins now

    assert main(["report", str(run.path)]) == 0
    assert "rmkit select" in capsys.readouterr().err
    assert "<b>Stale:</b>" in (run.path / "report" / "report.html").read_text()

    assert main(["select", str(run.path), scorer]) == 0
    assert "stale_outputs" not in json.loads((run.path / "run.json").read_text())
    sft = [json.loads(line) for line in (run.path / "sft.jsonl").read_text().splitlines()]
    assert sft[0]["messages"] == rescored[0][1]["messages"]  # the new argmax
    assert "Stale" not in (run.path / "report" / "report.html").read_text()
    capsys.readouterr()
    assert main(["report", str(run.path)]) == 0 and "rmkit select" not in capsys.readouterr().err


def test_prompt_counts_say_what_max_prompts_left_out(tmp_path):
    prompts = tmp_path / "question.jsonl"
    prompts.write_text(
        "".join(json.dumps({"question_id": i, "category": "writing", "turns": [f"q{i}"]}) + "\n" for i in range(5))
    )
    kept, report = load_run_prompts(SampleConfig(prompts=str(prompts), max_prompts=3))
    assert [p.id for p in kept] == ["0", "1", "2"]
    assert (report.read, report.kept, dict(report.dropped)) == (5, 3, {"max_prompts": 2})
    assert report.summary() == "read 5; kept 3; dropped 2 (max_prompts: 2)"
    _, everything = load_run_prompts(SampleConfig(prompts=str(prompts), max_prompts=10))
    assert (everything.read, everything.kept, dict(everything.dropped)) == (5, 5, {})


def test_the_random_pick_control_writes_as_many_random_conversations_of_the_same_prompts(tmp_path):
    recipe, run = make_run(tmp_path / "run")
    best = select_stage(recipe, run, quiet=True)
    best_sft = [json.loads(line) for line in (run.path / "sft.jsonl").read_text().splitlines()]
    control = load_recipe(None, ["sample.policy=my-policy", f"sample.n={N}", "select.exports=[mt_bench]", "select.pick=random"])
    stats = select_stage(control, run, quiet=True)
    random_sft = [json.loads(line) for line in (run.path / "sft.jsonl").read_text().splitlines()]
    assert (stats["pick"], stats["kept_prompts"], stats["sft_written"]) == ("random", best["kept_prompts"], best["sft_written"])
    questions = lambda rows: [row["messages"][0]["content"] for row in rows]  # noqa: E731
    assert questions(random_sft) == questions(best_sft)  # the same prompts, in the same order
    picks = [random_index(control.select.seed, str(qid), list(range(N))) for qid in QUESTION_IDS]
    kept = [row["messages"][1]["content"] for row in random_sft]
    assert kept == [f"answer {qid}.{k} turn 1" + "!" * k for qid, k in zip(QUESTION_IDS, picks)]
    assert best["mean_reward_kept"] == 0.0 and stats["mean_reward_kept"] == -sum(picks) / len(picks)
    answers = load_model_answers(run.path / "model_answer")[f"my-policy-bo{N}"]
    assert [answers[qid]["choices"][0]["turns"][0] for qid in QUESTION_IDS] == kept  # the exports follow the kept pick
