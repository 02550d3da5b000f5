"""The policy model, loaded once for sampling: its backend and how it is prompted.

One loader for every caller (the sampling stages, ``rmkit chat`` / ``rmkit ui`` and
``scripts/bench_sample.py``): the tokenizer with its chat template resolved, the model's
own end-of-sequence ids, the backend ``sample.backend`` names, and the stops and prompt
budget (:class:`rmkit.sampling.generate.Policy`) that follow from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rmkit.config.sections import SampleConfig
from rmkit.sampling.backends import Backend
from rmkit.sampling.generate import Policy


@dataclass
class LoadedPolicy:
    backend: Backend  # generates from token ids
    policy: Policy  # how the model is prompted: its tokenizer (template resolved), stops, prompt budget
    model_path: str  # the model folder the short name or hub id resolved to


def load_policy(cfg: SampleConfig, sequences: int | None = None, backend: Backend | None = None) -> LoadedPolicy:
    """``sample.policy`` on ``sample.backend`` (or on ``backend``, when one is handed in).

    ``sequences``: how many the caller generates at once, which sizes vLLM's KV cache on CPU.
    """
    from transformers import GenerationConfig

    from rmkit.models.builtin import resolve_model
    from rmkit.sampling.backends import load_backend
    from rmkit.sampling.generate import make_policy

    model_path = resolve_model(cfg.policy, "sample.policy")
    tokenizer, template = load_policy_tokenizer(cfg)
    try:
        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json
        eos = None
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    backend = backend or load_backend(cfg, model_path, tokenizer, sequences)
    return LoadedPolicy(backend, make_policy(tokenizer, template, cfg, backend.max_model_len, eos_ids), model_path)


def load_policy_tokenizer(cfg: SampleConfig):
    """``(tokenizer, template name)``: the policy's tokenizer with its chat template resolved, as it prompts the policy."""
    from transformers import AutoTokenizer

    from rmkit.data.templates import use_template
    from rmkit.models.builtin import resolve_model

    label = "sample.tokenizer" if cfg.tokenizer else "sample.policy"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(cfg.tokenizer or cfg.policy, label))
    return tokenizer, use_template(tokenizer, cfg.chat_template, cfg.force_chat_template)
