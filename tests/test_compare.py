"""`rmkit compare`: policies on the same prompts, paired by prompt; plain run folders, no model."""

import json

from rmkit.cli import main
from rmkit.config.fingerprint import fingerprint
from rmkit.config.recipe import load_recipe
from rmkit.sampling.runs import CandidateLog, RunFolder
from rmkit.selection.best_of_n import bootstrap_interval


def write_run(path, gold_per_prompt, tokens=4):
    """A scored run: per prompt id, the gold values of its replies (None: the check failed)."""
    recipe = load_recipe(None, ["sample.policy=p", f"sample.n={len(next(iter(gold_per_prompt.values())))}"])
    run = RunFolder(path)
    run.start(recipe, fingerprint(recipe, ("sample", "score")), None, overwrite=False)
    log = CandidateLog(run.candidates)
    for order, (prompt, golds) in enumerate(gold_per_prompt.items()):
        log.append(
            [
                {
                    "prompt_id": prompt,
                    "category": "",
                    "index": k,
                    "n": len(golds),
                    "per_turn": "independent",
                    "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"r{k}"}],
                    "turns": [
                        {
                            "reply": f"r{k}",
                            "tokens": tokens,
                            "finish_reason": "stop",
                            "prompt_tokens": 3,
                            "dropped_turns": 0,
                            "cut_tokens": 0,
                            "reward": None,
                        }
                    ],
                    "best_per_turn": [],
                    "reward": 0.0,
                    "selected": k == 0,
                    "scores": {"gold": g, "proxy": 1.0},
                    "extra": {},
                    "source": f"p.jsonl:{order + 1}",
                    "order": order,
                }
                for k, g in enumerate(golds)
            ]
        )
    return path


def test_compare_pairs_policies_by_prompt_with_intervals(tmp_path, capsys):
    base = write_run(tmp_path / "base", {f"q{i}": [0.0, 1.0 if i % 2 else 0.0] for i in range(20)})
    tuned = write_run(tmp_path / "tuned", {f"q{i}": [1.0, 1.0 if i % 3 else None] for i in range(20)}, tokens=9)
    out = tmp_path / "compare.json"
    assert main(["compare", str(base), str(tuned), "--scorer", "gold", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    base_means = [0.5 if i % 2 else 0.0 for i in range(20)]
    assert result["prompts"] == 20 and result["policies"][str(base)]["mean"] == sum(base_means) / 20
    tuned_row = result["policies"][str(tuned)]
    assert tuned_row["mean"] == 1.0 and tuned_row["replies_without_value"] == 7 and tuned_row["mean_reply_tokens"] == 9
    (diff,) = result["differences"]
    paired = [1.0 - m for m in base_means]
    assert (diff["policy"], diff["reference"]) == (str(tuned), str(base))
    assert diff["mean"] == sum(paired) / 20 and (diff["low"], diff["high"]) == bootstrap_interval(paired)
    assert diff["low"] <= diff["mean"] <= diff["high"]
    assert "tuned - " in capsys.readouterr().out


def test_compare_uses_only_the_prompts_every_run_answered_and_each_reference(tmp_path):
    a = write_run(tmp_path / "a", {"q1": [1.0], "q2": [0.0], "q3": [1.0]})
    b = write_run(tmp_path / "b", {"q2": [1.0], "q3": [1.0]})
    c = write_run(tmp_path / "c", {"q2": [0.5], "q3": [0.5]})
    out = tmp_path / "c.json"
    assert (
        main(
            [
                "compare",
                str(a),
                str(b),
                str(c),
                "--scorer",
                "gold",
                "--reference",
                str(a),
                "--reference",
                str(c),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["prompts"] == 2 and result["policies"][str(a)]["prompts_left_out"] == 1
    pairs = {(d["policy"], d["reference"]): d["mean"] for d in result["differences"]}
    assert pairs == {(str(b), str(a)): 0.5, (str(c), str(a)): 0.0, (str(a), str(c)): 0.0, (str(b), str(c)): 0.5}


def test_compare_refuses_what_it_cannot_pair(tmp_path, capsys):
    a = write_run(tmp_path / "a", {"q1": [1.0]})
    b = write_run(tmp_path / "b", {"q9": [1.0]})
    assert main(["compare", str(a), str(b), "--scorer", "gold"]) == 2
    assert "share no prompt" in capsys.readouterr().err
    assert main(["compare", str(a), str(a)]) == 2
    assert main(["compare", str(a), str(tmp_path)]) == 2
    assert "not a sampling run folder" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--scorer", "nope"]) == 2
    assert "no reply has scorer 'nope'" in capsys.readouterr().err
