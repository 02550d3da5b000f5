"""Best-of-N rejection sampling: the stages on a run folder (sample, score, select), each resumable.

The ``rmkit sample-and-score`` / ``sample`` / ``score`` / ``select`` / ``merge`` verbs
(:mod:`rmkit.sampling.verbs`) call these; the run folder layout is in :mod:`rmkit.sampling.runs`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rmkit import logs
from rmkit.atomic_files import write_json, write_jsonl
from rmkit.config.fingerprint import differences, fingerprint
from rmkit.config.recipe import dump_recipe
from rmkit.config.sections import Recipe, SampleConfig
from rmkit.errors import ConfigError, DataError
from rmkit.sampling.chunk_sampler import ChunkSampler, Finished, Timed
from rmkit.sampling.runs import MODEL_ANSWERS, CandidateLog, RunFolder, shard_items

# ----------------------------------------------------------------------------- stages


def sample_and_score(
    recipe: Recipe, output: str | Path, shard=None, overwrite=False, backend=None, scorer=None, ray_address=None
) -> dict:
    """All stages on ``output``; ``backend`` and ``scorer`` are loaded from the recipe unless given."""
    validate(recipe, scoring=True, ray_address=ray_address)
    run = RunFolder(output)
    run.start(recipe, fingerprint(recipe, ("sample", "score")), shard, overwrite)
    logs.log_to(run.path)
    scorer = sample_stage(recipe, run, shard, score_too=True, backend=backend, scorer=scorer, ray_address=ray_address)
    if run.state.get("needs_scoring"):  # some prompts were sampled by `rmkit sample`
        score_stage(recipe, run, scorer)
    return select_stage(recipe, run)


def sample_only(recipe: Recipe, output: str | Path, shard=None, overwrite=False, ray_address=None) -> None:
    """Sample into ``output`` without scoring (``per_turn: best`` scores as it goes)."""
    best = recipe.sample.per_turn == "best"
    validate(recipe, scoring=False, ray_address=ray_address)
    run = RunFolder(output)
    run.start(recipe, fingerprint(recipe, ("sample", "score") if best else ("sample",)), shard, overwrite)
    logs.log_to(run.path)
    sample_stage(recipe, run, shard, score_too=False, ray_address=ray_address)


def existing_run(recipe: Recipe, path: Path, sections: tuple[str, ...]) -> RunFolder:
    """The run folder at ``path``, which ``recipe``'s ``sections`` must not have changed."""
    run = RunFolder(path)
    if not run.exists():
        raise ConfigError(f"{path} is not a run folder yet: start it with `rmkit sample` or `rmkit sample-and-score`")
    changes = differences(run.state["fingerprint"], fingerprint(recipe, sections))
    if changes:
        raise ConfigError(f"{path} was sampled with other settings:\n  " + "\n  ".join(changes))
    logs.log_to(run.path)
    return run


def sample_stage(recipe: Recipe, run: RunFolder, shard, score_too: bool, backend=None, scorer=None, ray_address=None):
    """Sample the prompts not yet in the run, appending each as it finishes; returns the scorer used
    (None when Ray workers held it).

    The prompts go in chunks of ``sample.chunk_size`` to one :class:`ChunkSampler`, here or
    (``sample.executor: ray``) on each Ray worker; either way this process alone appends.
    """
    cfg = recipe.sample
    prompts, report = load_run_prompts(cfg)
    mine = shard_items(list(enumerate(prompts)), shard)
    run.state["prompts"] = {"total": len(prompts), "in_shard": len(mine), "file": report.to_dict()}
    run.save()
    log = CandidateLog(run.candidates)
    # Chunks are cut from the run's whole prompt list, never from what is left of it: a prompt's
    # candidates depend on the prompts that share its batches (measured, docs/sampling_at_scale.md),
    # so a resumed run samples every chunk with the companions an uninterrupted run gave it, and a
    # chunk cut short by an interruption is sampled again whole (only its missing prompts are kept).
    chunks = [mine[start : start + cfg.chunk_size] for start in range(0, len(mine), cfg.chunk_size)]
    chunks = [chunk for chunk in chunks if any(prompt.id not in log.done for _, prompt in chunk)]
    if not chunks:
        print(f"rmkit: all {len(mine)} prompts are sampled in {run.candidates}", file=sys.stderr)
        return scorer
    done = sum(prompt.id in log.done for _, prompt in mine)
    if cfg.executor == "ray":
        from rmkit.sampling.ray_executor import RayWorkers

        if backend is not None or scorer is not None:
            raise ValueError("sample.executor=ray: each Ray worker loads its own backend and scorer; none can be handed in")
        with RayWorkers(ChunkSampler, (recipe, score_too, len(chunks[0])), cfg, ray_address) as workers:
            append_finished(run, log, workers.map(chunks), len(mine), done)
        return None
    sampler = ChunkSampler(recipe, score_too, len(chunks[0]), backend, scorer)
    append_finished(run, log, map(sampler.sample, chunks), len(mine), done)
    return sampler.scorer


def append_finished(run: RunFolder, log: CandidateLog, finished: Iterable[Finished], total: int, done: int) -> None:
    """The driver: append each chunk's prompts as it finishes (in whatever order) and add its
    timings; the progress bar counts the run's (or shard's) ``total`` prompts, ``done`` before."""
    from tqdm import tqdm

    with tqdm(total=total, initial=done, desc="sample", unit="prompt") as bar:
        for chunk in finished:
            if chunk.needs_scoring and not run.state.get("needs_scoring"):
                run.state["needs_scoring"] = True
                run.save()  # before the unscored lines, so an interruption cannot lose the flag
            missing = [group for group in chunk.groups if group[0]["prompt_id"] not in log.done]  # a resampled chunk's
            for group in missing:
                log.append(group)
            for stage, amounts in chunk.timings.items():
                run.add_timing(stage, **amounts)  # summed over workers: engine time, not the wall clock
            run.save()
            bar.update(len(missing))


def score_stage(recipe: Recipe, run: RunFolder, scorer=None) -> None:
    """Score every candidate with ``score.reward_model``; resumable, swapped in when complete."""
    from tqdm import tqdm

    from rmkit.sampling.candidates import score_groups
    from rmkit.scoring.scorer_set import load_scorers

    groups = run.groups()
    if not groups:
        raise ConfigError(f"{run.path} has no candidates yet: run `rmkit sample` first")
    target = fingerprint(recipe, ("score",))["score"]
    if run.state["fingerprint"].get("score") == target and not run.state.get("needs_scoring"):
        print(f"rmkit: every candidate in {run.candidates} is scored with this reward model", file=sys.stderr)
        return
    if run.state.get("rescoring") != target:  # a re-score with another model was cut short: start over
        run.rescoring.unlink(missing_ok=True)
        run.state["rescoring"] = target
        run.state.get("timings", {}).pop("score", None)  # this model's seconds and counts, not the last one's too
        run.save()
    log = CandidateLog(run.rescoring)
    timed = Timed(load_scorers(recipe.score, scorer))
    with tqdm(total=len(groups), initial=len(log.done), desc="score", unit="prompt") as bar:
        todo = [g for g in groups if g[0]["prompt_id"] not in log.done]
        for start in range(0, len(todo), recipe.sample.chunk_size):
            chunk = todo[start : start + recipe.sample.chunk_size]
            score_groups(chunk, timed)
            for group in chunk:
                log.append(group)
            run.add_timing("score", **timed.take())
            run.save()
            bar.update(len(chunk))
    run.rescoring.replace(run.candidates)
    run.state["fingerprint"]["score"] = target
    run.state.pop("rescoring")
    run.state.pop("needs_scoring", None)
    if run.outputs():  # selected from the earlier rewards: stale until `rmkit select` writes them again
        run.state["stale_outputs"] = run.outputs()
    run.save()
    dump_recipe(recipe, run.recipe_path)


def select_stage(recipe: Recipe, run: RunFolder, quiet: bool = False) -> dict:
    """Write sft.jsonl, pairs.jsonl, the requested exports and stats.json; print the summary."""
    from tqdm import tqdm

    from rmkit.sampling.candidates import sampled_messages
    from rmkit.selection import exports
    from rmkit.selection.select import format_summary, select_group, summarize

    began = time.perf_counter()
    cfg, groups = recipe.select, run.groups()
    model_id = cfg.model_id or f"{Path(recipe.sample.policy).name}-bo{recipe.sample.n}"
    sft, pairs, answers, alpaca, selections = [], [], [], [], []
    no_pair = Counter()
    for group in tqdm(groups, desc="select", unit="prompt", disable=quiet):
        selection = select_group(group, cfg)
        selections.append(selection)
        sft += [exports.sft_record(group[k]["messages"]) for k in selection.kept]
        if selection.pair and cfg.pairs:
            pairs.append(exports.pair_record(group[selection.pair[0]]["messages"], group[selection.pair[1]]["messages"]))
        if selection.no_pair:
            no_pair[selection.no_pair] += 1
        # the exports show what was kept (the random pick in the control arm), else the best
        best = group[selection.kept[0] if selection.kept else selection.best if selection.best is not None else 0]
        answers.append((best["extra"].get("question_id", best["prompt_id"]), sampled_messages(best)))
        alpaca.append(exports.alpaca_eval_output(best["messages"], best["extra"], model_id, best["category"]))
    write_jsonl(run.path / "sft.jsonl", sft)
    write_jsonl(run.path / "pairs.jsonl", pairs)
    if "mt_bench" in cfg.exports:
        write_model_answers(run.path / MODEL_ANSWERS, model_id, exports.mt_bench_answers(answers, model_id, time.time()))
    if "alpaca_eval" in cfg.exports:
        write_json(run.path / "alpaca_eval_outputs.json", alpaca)
    run.state.setdefault("timings", {})["select"] = {"seconds": time.perf_counter() - began}
    run.save()
    dump_recipe(recipe, run.recipe_path)
    stats = {
        **summarize(groups, selections),
        "pick": cfg.pick,
        "kept_prompts": sum(bool(s.kept) for s in selections),
        "mean_reward_kept": _mean([group[k]["reward"] for group, s in zip(groups, selections) for k in s.kept]),
        "sft_written": len(sft),
        "pairs_written": len(pairs),
        "no_pair": dict(no_pair),
        "below_min_reward": sum(s.best is not None and not s.kept for s in selections),
        **_generation_counts(groups),
        "prompt_file": run.state.get("prompts", {}).get("file", {}),
        "timings": _timings(run.state.get("timings", {})),
    }
    write_json(run.path / "stats.json", stats)
    if run.state.pop("stale_outputs", None):  # they follow the rewards again
        run.save()
    if not quiet:
        print(format_summary(stats, run.path))
    return stats


def write_model_answers(folder: Path, model_id: str, records: list[dict]) -> None:
    """FastChat's layout: ``model_answer/<model_id>.jsonl``, the folder FastChat's ``load_model_answers``
    reads (every ``*.jsonl`` in it is a model, named by the file); an earlier model id's file goes."""

    folder.mkdir(exist_ok=True)
    write_jsonl(folder / f"{model_id}.jsonl", records)
    for other in folder.glob("*.jsonl"):
        if other.name != f"{model_id}.jsonl":
            other.unlink()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _generation_counts(groups: list[list[dict]]) -> dict:
    turns = [t for group in groups for line in group for t in line["turns"]]
    return {
        "generated_tokens": sum(t["tokens"] for t in turns),
        "finish_reasons": dict(Counter(t["finish_reason"] for t in turns)),
        "turns_with_dropped_history": sum(t["dropped_turns"] > 0 for t in turns),
        "turns_cut_from_left": sum(t["cut_tokens"] > 0 for t in turns),
    }


def _timings(timings: dict) -> dict:
    out = {stage: dict(values) for stage, values in timings.items()}
    if out.get("sample", {}).get("seconds"):
        out["sample"]["tokens_per_second"] = out["sample"]["tokens"] / out["sample"]["seconds"]
    if out.get("score", {}).get("seconds"):
        out["score"]["conversations_per_second"] = out["score"]["conversations"] / out["score"]["seconds"]
    return out


# ----------------------------------------------------------------------------- loading


def validate(recipe: Recipe, scoring: bool, ray_address: str | None = None) -> None:
    """What a stage needs beyond the sections' own checks (made as they were read): the flags that go
    with them, and a scorer when this stage scores."""
    if ray_address and recipe.sample.executor != "ray":
        raise ConfigError(
            f"--ray-address {ray_address} goes with sample.executor=ray (the recipe has {recipe.sample.executor!r})"
        )
    if scoring or recipe.sample.per_turn == "best":
        from rmkit.scoring.scorer_set import scorer_specs

        scorer_specs(recipe.score)


def load_run_prompts(cfg: SampleConfig):
    from rmkit.data.data_report import DataReport
    from rmkit.data.formats import load_prompts

    if not cfg.prompts:
        raise ConfigError("sample.prompts is not set: give a prompt file (sample.prompts=PATH)")
    report = DataReport()
    prompts = load_prompts(cfg.prompts, cfg.prompts_format, cfg.on_error, report)
    if not prompts:
        raise DataError(f"sample.prompts {cfg.prompts}: no prompts in it ({report.summary()})")
    if cfg.max_prompts is not None and len(prompts) > cfg.max_prompts:
        report.dropped["max_prompts"] += len(prompts) - cfg.max_prompts  # read, but not sampled
        report.kept -= len(prompts) - cfg.max_prompts
        prompts = prompts[: cfg.max_prompts]
    return prompts, report
