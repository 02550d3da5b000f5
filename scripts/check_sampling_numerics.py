"""How much a prompt's candidates depend on what else is in the engine: its batch companions and
the prefix cache. Same seeds throughout, one engine; counts candidates whose replies differ.

    python scripts/check_sampling_numerics.py --prompts 12 --max-tokens 96

Samples the first ``--prompts`` demo prompts (both turns, N per prompt) as one chunk in a fresh
engine ("cold"), the same chunk again (its prefixes now cached: "warm"), then each half of it
alone. ``--no-prefix-caching`` turns vLLM's prefix cache off. With ``--forget`` the cache is
emptied before each chunk, as rmkit's pipeline does (``forget_cached_prompts``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--no-prefix-caching", action="store_true")
    parser.add_argument("--forget", action="store_true", help="empty the prefix cache before each chunk")
    args = parser.parse_args()

    import vllm

    from rmkit.config.sections import SampleConfig
    from rmkit.data.formats import load_prompts
    from rmkit.sampling.generate import sample_prompts
    from rmkit.sampling.policy import load_policy

    if args.no_prefix_caching:

        class LLM(vllm.LLM):
            def __init__(self, *a, **k):
                super().__init__(*a, **{**k, "enable_prefix_caching": False})

        vllm.LLM = LLM
    cfg = SampleConfig(
        policy=args.policy,
        backend="vllm",
        n=args.n,
        temperature=0.7,
        top_p=0.95,
        max_tokens=args.max_tokens,
        dtype=args.dtype,
        max_model_len=2048,
        enforce_eager=True,
        seed=0,
    )  # the demo's settings
    prompts = load_prompts(str(Path(__file__).resolve().parents[1] / "rmkit/demo_data/prompts.jsonl"))[: args.prompts]
    loaded = load_policy(cfg, sequences=len(prompts) * args.n)

    def replies(chunk):
        if args.forget:
            loaded.backend.forget_cached_prompts()
        groups = sample_prompts(chunk, loaded.backend, loaded.policy, cfg)
        return {(line["prompt_id"], line["index"]): [t["reply"] for t in line["turns"]] for group in groups for line in group}

    def differ(a, b) -> str:
        keys = sorted(set(a) & set(b))
        return f"{sum(a[k] != b[k] for k in keys)} of {len(keys)}"

    began = time.time()
    cold = replies(prompts)
    warm = replies(prompts)
    half = len(prompts) // 2
    first, second = replies(prompts[:half]), replies(prompts[half:])
    print(
        json.dumps(
            {
                "prefix_caching": not args.no_prefix_caching,
                "forget": args.forget,
                "max_tokens": args.max_tokens,
                "again_vs_first": differ(warm, cold),
                "first_half_alone": differ(first, warm),
                "second_half_alone": differ(second, warm),
                "seconds": round(time.time() - began),
            }
        )
    )


if __name__ == "__main__":  # vLLM's engine process is spawned: it imports this module again
    main()
