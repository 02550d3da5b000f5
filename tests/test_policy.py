"""The one policy loader: tokenizer and template, EOS ids, backend and prompting, by name."""

from rmkit.config.sections import SampleConfig
from rmkit.sampling.policy import load_policy
from tests.fakes import FakeBackend


def test_load_policy_gives_the_backend_and_how_it_is_prompted(tiny_llama):
    cfg = SampleConfig(policy=str(tiny_llama), backend="transformers", max_tokens=24, max_model_len=256, chat_template="plain")
    loaded = load_policy(cfg)
    assert loaded.model_path == str(tiny_llama) and loaded.backend.max_model_len == 256
    policy = loaded.policy
    assert policy.budget == 256 - 24
    assert "<|im_start|>" in policy.tokenizer.chat_template  # its own template wins over the fallback
    assert policy.tokenizer.eos_token_id in policy.stop_token_ids
    forced = load_policy(
        SampleConfig(policy=str(tiny_llama), backend="transformers", chat_template="plain", force_chat_template=True)
    )
    assert forced.policy.stop == ("\n\nHuman:",)


def test_a_handed_in_backend_is_used_as_is(tiny_llama):
    backend = FakeBackend()
    loaded = load_policy(SampleConfig(policy=str(tiny_llama), max_tokens=16), backend=backend)
    assert loaded.backend is backend and loaded.policy.budget == backend.max_model_len - 16
