"""Multi-turn sampling: every user turn is answered with the conversation so far.

``sample.per_turn`` picks how the N candidates of a prompt grow:

- ``independent``: each candidate is its own trajectory, and its turn 2 continues its own
  turn-1 reply. Turn 1 is one request with ``n = N``; later turns are one request per
  trajectory.
- ``best``: after each turn the N replies are scored and the next turn continues from the
  best one only (turn-level rejection sampling); every turn is one request with ``n = N``.

All requests of a turn, over every prompt of the batch, go to the backend in one call.
A prompt longer than ``max_model_len - max_tokens`` loses its oldest turns first (never
the system message, never the current user turn), then tokens from the left
(:func:`rmkit.data.encode.encode_prompt`, as training shortens a prompt); both are
counted in the turn's record.

Each candidate is one record of ``candidates.jsonl``, shaped as
:class:`rmkit.sampling.candidates.CandidateRecord`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from rmkit.config.sections import CATEGORY_TEMPERATURES, SampleConfig
from rmkit.conversation import Conversation, Prompt, reply_message, turn_message
from rmkit.data.encode import EncodedPrompt, encode_prompt
from rmkit.data.templates import stop_strings
from rmkit.errors import ConfigError
from rmkit.sampling.backends import Backend, Completion, GenParams
from rmkit.sampling.candidates import new_candidates, prompt_record
from rmkit.selection.select import best_index, mark_selected

# What scores a turn's replies (a rmkit.scoring.scorer_set.ScorerSet): the conversations and their
# prompt records in, per conversation {"reward", "scores", "errors"?} out.
TurnScorer = Callable[[list[Conversation], list[dict]], list[dict]]


@dataclass
class Policy:
    """How the policy is prompted: its tokenizer (template resolved), stops, prompt budget."""

    tokenizer: object
    stop: tuple[str, ...]
    stop_token_ids: tuple[int, ...]
    budget: int  # prompt tokens: max_model_len - max_tokens


def make_policy(tokenizer, template_name: str, cfg: SampleConfig, max_model_len: int, eos_ids=()) -> Policy:
    """Stops: the template's end strings (and their token ids when one token), EOS, the recipe's."""
    strings = stop_strings(tokenizer, template_name)
    ids = {tokenizer.eos_token_id, *eos_ids, *cfg.stop_token_ids}
    vocab = tokenizer.get_vocab()
    ids |= {vocab[s] for s in strings if s in vocab}
    # A special-token stop never shows in the decoded text; its id is what stops generation.
    text_stops = [s for s in strings if s not in vocab] + list(cfg.stop)
    budget = max_model_len - cfg.max_tokens
    if budget <= 0:
        raise ConfigError(f"sample.max_tokens={cfg.max_tokens} leaves no room for a prompt in max_model_len={max_model_len}")
    return Policy(tokenizer, tuple(text_stops), tuple(sorted(i for i in ids if i is not None)), budget)


def temperature(cfg: SampleConfig, category: str) -> float:
    """The category's temperature from ``sample.category_temperature``, else ``sample.temperature``."""
    table = cfg.category_temperature or {}
    if isinstance(table, str):  # a preset's name, checked as the section is read
        table = CATEGORY_TEMPERATURES[table]
    return float(table.get(category, cfg.temperature))


def request_seed(seed: int, prompt_id: str, turn: int, trajectory: int = 0) -> int:
    """A seed fixed by the prompt and its place, never by batch order (resume, shards)."""
    digest = hashlib.blake2b(f"{seed}/{prompt_id}/{turn}/{trajectory}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") >> 1  # leaves room for the + k of n > 1


def sample_prompts(
    prompts: list[Prompt], backend: Backend, policy: Policy, cfg: SampleConfig, score: TurnScorer | None = None
) -> list[list[dict]]:
    """Sample every turn of every prompt: per prompt, its ``n`` candidate lines.

    ``score`` is needed for ``per_turn: best``, which also leaves every turn scored.
    """
    if cfg.per_turn == "best" and score is None:
        raise ConfigError("per_turn: best needs a reward model to pick each turn's best reply")
    groups = [new_candidates(p, cfg.n, cfg.per_turn) for p in prompts]
    for turn in range(max((len(p.turns) for p in prompts), default=0)):
        active = [(p, lines) for p, lines in zip(prompts, groups) if turn < len(p.turns)]
        if turn == 0 or cfg.per_turn == "best":
            _sample_shared(active, turn, backend, policy, cfg)
        else:
            _sample_trajectories(active, turn, backend, policy, cfg)
        if cfg.per_turn == "best":
            _keep_best(active, turn, score)
    return groups


def _sample_shared(active: list[tuple[Prompt, list[dict]]], turn: int, backend: Backend, policy: Policy, cfg: SampleConfig):
    """One request per prompt with n candidates, after the conversation kept so far."""
    requests = []
    for prompt, lines in active:
        kept = lines[lines[0]["best_per_turn"][-1]] if turn else lines[0]
        requests.append((prompt, kept["messages"], request_seed(cfg.seed, prompt.id, turn)))
    outputs = _generate(requests, turn, backend, policy, cfg, n=cfg.n)
    for (_, lines), (context, encoded, completions) in zip(active, outputs):
        for line, completion in zip(lines, completions):
            _add_turn(line, context, encoded, completion)


def _sample_trajectories(active: list[tuple[Prompt, list[dict]]], turn: int, backend: Backend, policy: Policy, cfg: SampleConfig):
    """One request per trajectory: candidate k's next turn sees candidate k's own replies."""
    requests = [(p, line["messages"], request_seed(cfg.seed, p.id, turn, line["index"])) for p, lines in active for line in lines]
    lines = [line for _, group in active for line in group]
    for line, (context, encoded, (completion,)) in zip(lines, _generate(requests, turn, backend, policy, cfg, n=1)):
        _add_turn(line, context, encoded, completion)


# The sample section's keys a request takes as they are (their names are GenParams' and vLLM's).
REQUEST_KEYS = ("top_p", "top_k", "min_p", "max_tokens", "repetition_penalty", "presence_penalty", "frequency_penalty")


def gen_params(cfg: SampleConfig, policy, temperature: float, seed: int) -> GenParams:
    """The recipe's sampling settings for one request: its temperature and seed, the policy's stop
    strings and ids, and the :data:`REQUEST_KEYS` as the recipe sets them."""
    recipe = {key: getattr(cfg, key) for key in REQUEST_KEYS}
    return GenParams(temperature=temperature, stop=policy.stop, stop_token_ids=policy.stop_token_ids, seed=seed, **recipe)


def _generate(requests, turn: int, backend: Backend, policy: Policy, cfg: SampleConfig, n: int):
    """(context with the user turn, encoded prompt, n completions) per request, in one backend call."""
    contexts, encoded, params = [], [], []
    for prompt, messages, seed in requests:
        contexts.append([*messages, turn_message(prompt.turns[turn])])
        encoded.append(encode_prompt(policy.tokenizer, contexts[-1], policy.budget))
        params.append(gen_params(cfg, policy, temperature(cfg, prompt.category), seed))
    completions = backend.generate([e.ids for e in encoded], params, n)
    return list(zip(contexts, encoded, completions))


def _add_turn(line: dict, context: Conversation, encoded: EncodedPrompt, completion: Completion) -> None:
    reply = completion.text.strip()
    line["messages"] = [*context, reply_message(reply)]
    line["turns"].append(
        {
            "reply": reply,
            "tokens": completion.tokens,
            "finish_reason": completion.finish_reason,
            "prompt_tokens": len(encoded.ids),
            "dropped_turns": encoded.dropped_turns,
            "cut_tokens": encoded.cut_tokens,
            "reward": None,
        }
    )


def _keep_best(active: list[tuple[Prompt, list[dict]]], turn: int, score: TurnScorer) -> None:
    """Score this turn's replies; the best one is continued (or, on the last turn, final)."""
    lines_now = [line for _, lines in active for line in lines]
    results = iter(score([line["messages"] for line in lines_now], [prompt_record(line) for line in lines_now]))
    for prompt, lines in active:
        for line in lines:
            line["turns"][turn].update(next(results))
        if turn < len(prompt.turns) - 1:
            best = best_index([line["turns"][turn]["reward"] for line in lines])
            for line in lines:
                line["best_per_turn"].append(best)
        else:
            for line in lines:
                line.update({k: v for k, v in line["turns"][turn].items() if k in ("reward", "scores", "errors")})
            mark_selected(lines)
