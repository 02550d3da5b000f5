"""Reward-model loading, scoring and saving, on the tiny Llama (and MiniLM for an encoder)."""

import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rmkit.config.sections import LoraConfig, ModelConfig
from rmkit.conversation import message
from rmkit.data.encode import encode_conversation
from rmkit.errors import ConfigError
from rmkit.models.classifier import compute_rewards, head_name, load_tokenizer
from rmkit.scoring.reward_models import load_trained_reward_model
from rmkit.training.reward_loss import bradley_terry_loss, compute_rewards_in_groups
from rmkit.training.reward_model import build_reward_model, save_reward_model

REPLIES = [
    "yes",
    "Paris is the capital of France.",
    "no no no",
    "Once upon a time there was a small robot who loved to read books.",
]


def conversations(replies=REPLIES):
    return [[message("user", "What is the capital of France?"), message("assistant", reply)] for reply in replies]


def encode(tokenizer, replies=REPLIES) -> list[list[int]]:
    return [encode_conversation(tokenizer, conv, 256) for conv in conversations(replies)]


def pad(tokenizer, ids: list[list[int]], side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, ids))
    rows, masks = [], []
    for seq in ids:
        fill = [tokenizer.pad_token_id] * (width - len(seq))
        rows.append(fill + seq if side == "left" else seq + fill)
        masks.append([0] * len(fill) + [1] * len(seq) if side == "left" else [1] * len(seq) + [0] * len(fill))
    return torch.tensor(rows), torch.tensor(masks)


def score(model, tokenizer, ids, side="right") -> torch.Tensor:
    with torch.no_grad():
        return compute_rewards(model, *pad(tokenizer, ids, side))


def fit_a_little(model, tokenizer, steps: int = 3) -> None:
    """A few real optimizer steps (reply 0 over reply 2), so adapters and head move off their init."""
    batch = encode(tokenizer, [REPLIES[0], REPLIES[2]])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        chosen, rejected = compute_rewards(model, *pad(tokenizer, batch)).chunk(2)
        bradley_terry_loss(chosen, rejected).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture
def eos_padded_llama(tiny_llama, tmp_path):
    """The tiny Llama with a tokenizer whose pad token is its EOS (like SmolLM2, Llama 3…)."""
    folder = tmp_path / "eos_padded"
    shutil.copytree(tiny_llama, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(folder)
    return folder


def test_pad_equal_to_eos_is_replaced(eos_padded_llama):
    # The vicuna template ends every reply with the EOS, where the score must be read.
    cfg = ModelConfig(name_or_path=str(eos_padded_llama), chat_template="vicuna", force_chat_template=True)
    raw = AutoTokenizer.from_pretrained(eos_padded_llama)
    assert raw.pad_token == raw.eos_token  # the trap, as shipped
    tokenizer = load_tokenizer(cfg)
    assert tokenizer.pad_token != tokenizer.eos_token
    model = build_reward_model(cfg, None, tokenizer).eval()
    assert model.config.pad_token_id == tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) == len(raw) + 1

    ids = encode(tokenizer)
    assert all(seq[-1] == tokenizer.eos_token_id for seq in ids)
    rewards = score(model, tokenizer, ids)
    assert len({round(r, 4) for r in rewards.tolist()}) == len(REPLIES)
    # The final EOS is read: dropping it changes the score. With pad == EOS the model takes the
    # EOS for padding and reads one token early (even unpadded), so dropping it changes nothing.
    without_eos = score(model, tokenizer, [seq[:-1] for seq in ids])
    assert (rewards - without_eos).abs().min() > 1e-4
    model.config.pad_token_id = tokenizer.eos_token_id
    trapped = torch.cat([score(model, tokenizer, [seq]) for seq in ids])
    torch.testing.assert_close(trapped, without_eos, atol=1e-4, rtol=0)


def test_recipe_pad_token_reuses_an_existing_token(eos_padded_llama):
    cfg = ModelConfig(name_or_path=str(eos_padded_llama), pad_token="<|endoftext|>")
    tokenizer = load_tokenizer(cfg)
    model = build_reward_model(cfg, None, tokenizer)
    assert tokenizer.pad_token == "<|endoftext|>" and len(tokenizer) == model.config.vocab_size
    assert model.config.pad_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")


def test_scores_do_not_depend_on_batch_size_or_padding_side(tiny_llama):
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(tiny_llama)))
    model = build_reward_model(ModelConfig(name_or_path=str(tiny_llama)), None, tokenizer).eval()
    ids = encode(tokenizer)
    assert len({len(seq) for seq in ids}) == len(ids)  # mixed lengths: every row gets a different amount of padding
    alone = torch.cat([score(model, tokenizer, [seq]) for seq in ids])
    torch.testing.assert_close(score(model, tokenizer, ids, "right"), alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(score(model, tokenizer, ids, "left"), alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(score(model, tokenizer, ids[1:3], "left"), alone[1:3], atol=1e-4, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_grouped_forwards_give_the_rewards_loss_and_gradients_of_one_forward(tiny_llama, side):
    from rmkit.training.reward_loss import forward_groups, pair_rewards, training_loss

    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(tiny_llama)))
    model = build_reward_model(ModelConfig(name_or_path=str(tiny_llama)), LoraConfig(r=4), tokenizer)
    fit_a_little(model, tokenizer)  # adapters and head off their init, so gradients reach them
    long = ["Once upon a time there was a small robot who loved to read books. " * 4, "Paris " * 40]
    ids = encode(tokenizer, [REPLIES[0], long[0], REPLIES[2], REPLIES[1], long[1], REPLIES[3]])
    assert len(forward_groups([len(s) for s in ids], forward_cost=0)) > 1  # the lengths really are split
    input_ids, mask = pad(tokenizer, ids, side)
    # The reward is read at each row's last real token: what scoring each row alone gives.
    alone = torch.cat([compute_rewards(model, *pad(tokenizer, [seq])) for seq in ids]).detach()

    def loss_and_grads(rewards):
        model.zero_grad()
        loss = training_loss(*rewards.chunk(2))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    one_loss, one_grads = loss_and_grads(compute_rewards(model, input_ids, mask))
    grouped = compute_rewards_in_groups(model, input_ids, mask, forward_cost=0)
    torch.testing.assert_close(grouped.detach(), alone, atol=1e-5, rtol=0)
    grouped_loss, grouped_grads = loss_and_grads(grouped)
    torch.testing.assert_close(grouped_loss, one_loss, atol=1e-6, rtol=0)
    for one, split in zip(one_grads, grouped_grads):
        torch.testing.assert_close(split, one, atol=1e-5, rtol=1e-4)
    # pair_rewards: the first half of the rows is the chosen side, the second the rejected.
    half = len(ids) // 2
    batch = {
        "input_ids_chosen": input_ids[:half],
        "attention_mask_chosen": mask[:half],
        "input_ids_rejected": input_ids[half:],
        "attention_mask_rejected": mask[half:],
    }
    chosen, rejected = pair_rewards(model, batch)
    torch.testing.assert_close(torch.cat([chosen, rejected]).detach(), alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("runs_wanted", [3, 2, 1])
def test_backward_in_runs_gives_the_loss_and_gradients_of_the_whole_batch(tiny_llama, runs_wanted):
    """Pairs backpropagated run by run (a run's activations freed before the next) sum to the
    whole batch's loss and gradients, margins and the centring term included."""
    from rmkit.training.reward_loss import backward_runs, loss_and_backward, pair_rewards, pair_tokens, training_loss

    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(tiny_llama)))
    model = build_reward_model(ModelConfig(name_or_path=str(tiny_llama)), LoraConfig(r=4), tokenizer)
    fit_a_little(model, tokenizer)
    long = ["Once upon a time there was a small robot who loved to read books. " * 4, "Paris " * 40]
    input_ids, mask = pad(tokenizer, encode(tokenizer, [REPLIES[0], long[0], REPLIES[2], REPLIES[1], long[1], REPLIES[3]]))
    batch = {
        "input_ids_chosen": input_ids[:3],
        "attention_mask_chosen": mask[:3],
        "input_ids_rejected": input_ids[3:],
        "attention_mask_rejected": mask[3:],
        "margin": torch.tensor([0.0, 0.5, -0.25]),
    }
    tokens = sorted(pair_tokens(batch))
    max_tokens = {3: 1, 2: tokens[0] + tokens[1], 1: sum(tokens)}[runs_wanted]  # one pair a run, a split, the whole batch
    runs = backward_runs(pair_tokens(batch), max_tokens)
    assert len(runs) == runs_wanted

    def grads():
        return [p.grad.clone() for p in model.parameters() if p.requires_grad]

    model.zero_grad()
    whole = training_loss(*pair_rewards(model, batch), batch["margin"], 0.01)
    whole.backward()
    whole_grads = grads()
    model.zero_grad()
    backwards = []
    loss = loss_and_backward(
        model, batch, lambda run_loss: (backwards.append(1), run_loss.backward()), max_tokens, center_rewards_coefficient=0.01
    )
    assert len(backwards) == len(runs)
    torch.testing.assert_close(loss, whole.detach(), atol=1e-6, rtol=0)
    for one, split in zip(whole_grads, grads()):
        torch.testing.assert_close(split, one, atol=1e-5, rtol=1e-4)


def test_frozen_weights_stored_in_bf16_give_the_same_loss_and_gradients_under_autocast(tiny_llama):
    """Autocast casts each float32 weight to bf16 at every forward; stored in bf16 they give the same matmuls."""
    from rmkit.training.memory import store_frozen_weights_in
    from rmkit.training.reward_loss import training_loss

    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(tiny_llama)))
    model = build_reward_model(ModelConfig(name_or_path=str(tiny_llama)), LoraConfig(r=4), tokenizer)
    fit_a_little(model, tokenizer)
    input_ids, mask = pad(tokenizer, encode(tokenizer))

    def loss_and_grads():
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = training_loss(*compute_rewards(model, input_ids, mask).chunk(2))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    loss, grads = loss_and_grads()
    assert store_frozen_weights_in(model, torch.bfloat16) > 0
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    frozen_linear = {m.weight.dtype for m in model.modules() if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad}
    assert trainable == {torch.float32} and frozen_linear == {torch.bfloat16}  # LoRA and the head keep float32
    stored_loss, stored_grads = loss_and_grads()
    torch.testing.assert_close(stored_loss, loss, atol=0, rtol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(stored_grads[name], grad, atol=0, rtol=0)


def test_lora_trains_and_saves_the_score_head(tiny_llama, tmp_path):
    cfg = ModelConfig(name_or_path=str(tiny_llama))
    tokenizer = load_tokenizer(cfg)
    model = build_reward_model(cfg, LoraConfig(r=4, dropout=0.0), tokenizer)
    assert head_name(model.base_model.model) == "score"
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "base_model.model.score.modules_to_save.default.weight" in trainable
    assert any("lora_A" in name for name in trainable)
    initial_head = model.base_model.model.score.modules_to_save["default"].weight.detach().clone()

    fit_a_little(model, tokenizer)
    ids = encode(tokenizer)
    trained = score(model, tokenizer, ids)
    save_reward_model(model, tokenizer, tmp_path / "out")

    adapter = load_file(tmp_path / "out" / "adapter" / "adapter_model.safetensors")
    assert not torch.equal(adapter["base_model.model.score.weight"], initial_head)  # trained, and saved
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "model").eval()
    torch.testing.assert_close(score(merged, tokenizer, ids), trained, atol=1e-5, rtol=0)
    for path in (tmp_path / "out", tmp_path / "out" / "adapter"):  # merged model; adapter + base
        reloaded, reloaded_tokenizer = load_trained_reward_model(str(path))
        assert not reloaded.training and reloaded_tokenizer.chat_template == tokenizer.chat_template
        torch.testing.assert_close(score(reloaded, reloaded_tokenizer, ids), trained, atol=1e-5, rtol=0)


@pytest.mark.parametrize("lora", [True, False])
def test_a_saved_reward_model_says_its_one_output_is_a_regression_score(tiny_llama, tmp_path, lora):
    """config.json carries problem_type "regression": vLLM's pooling runner then returns the raw logit, not its sigmoid."""
    import json

    cfg = ModelConfig(name_or_path=str(tiny_llama))
    tokenizer = load_tokenizer(cfg)
    save_reward_model(build_reward_model(cfg, LoraConfig(enabled=lora, r=4), tokenizer), tokenizer, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1


def test_adapter_reload_grows_the_base_for_an_added_pad(eos_padded_llama, tmp_path):
    cfg = ModelConfig(name_or_path=str(eos_padded_llama))
    tokenizer = load_tokenizer(cfg)
    model = build_reward_model(cfg, LoraConfig(r=4, dropout=0.0), tokenizer)
    fit_a_little(model, tokenizer)
    ids = encode(tokenizer)
    save_reward_model(model, tokenizer, tmp_path / "out", merge=False)
    assert not (tmp_path / "out" / "model").exists()
    reloaded, reloaded_tokenizer = load_trained_reward_model(str(tmp_path / "out"))
    assert reloaded_tokenizer.pad_token == tokenizer.pad_token
    torch.testing.assert_close(score(reloaded, reloaded_tokenizer, ids), score(model, tokenizer, ids), atol=1e-5, rtol=0)


def test_adapter_loads_with_plain_peft_on_its_base(eos_padded_llama, tmp_path):
    """As docs/training.md shows: the base grown to the adapter's tokenizer, then PEFT, is the merged model."""
    from peft import PeftModel

    cfg = ModelConfig(name_or_path=str(eos_padded_llama))
    tokenizer = load_tokenizer(cfg)
    model = build_reward_model(cfg, LoraConfig(r=4, dropout=0.0), tokenizer)
    fit_a_little(model, tokenizer)
    save_reward_model(model, tokenizer, tmp_path / "out")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "model").eval()

    adapter_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out" / "adapter")
    base = AutoModelForSequenceClassification.from_pretrained(eos_padded_llama, num_labels=1)
    base.resize_token_embeddings(len(adapter_tokenizer))
    base.config.pad_token_id = adapter_tokenizer.pad_token_id
    plain = PeftModel.from_pretrained(base, tmp_path / "out" / "adapter").eval()
    ids = encode(adapter_tokenizer)
    torch.testing.assert_close(score(plain, adapter_tokenizer, ids), score(merged, tokenizer, ids), atol=1e-5, rtol=0)
    weights = plain.merge_and_unload().state_dict()
    for name, weight in merged.state_dict().items():  # the added pad's embedding row too: saved, not drawn anew
        torch.testing.assert_close(weights[name], weight, atol=1e-6, rtol=0, msg=name)


def test_an_adapter_on_an_unchanged_vocabulary_carries_no_embeddings(tiny_llama, tmp_path):
    cfg = ModelConfig(name_or_path=str(tiny_llama))
    tokenizer = load_tokenizer(cfg)
    save_reward_model(build_reward_model(cfg, LoraConfig(r=4), tokenizer), tokenizer, tmp_path / "out", merge=False)
    assert not any("embed" in name for name in load_file(tmp_path / "out" / "adapter" / "adapter_model.safetensors"))


def test_full_fine_tuning_saves_just_the_model(tiny_llama, tmp_path):
    cfg = ModelConfig(name_or_path=str(tiny_llama))
    tokenizer = load_tokenizer(cfg)
    model = build_reward_model(cfg, LoraConfig(enabled=False), tokenizer)
    assert all(p.requires_grad for p in model.parameters())
    fit_a_little(model, tokenizer, steps=1)
    save_reward_model(model, tokenizer, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model"]
    reloaded, _ = load_trained_reward_model(str(tmp_path / "out"))
    ids = encode(tokenizer)
    torch.testing.assert_close(score(reloaded, tokenizer, ids), score(model, tokenizer, ids), atol=1e-5, rtol=0)


def test_encoder_classifier_head_with_lora(tmp_path):
    from rmkit.models.builtin import ModelNotAvailable, resolve_model

    try:
        minilm = resolve_model("minilm")
    except ModelNotAvailable as err:
        pytest.skip(str(err))
    cfg = ModelConfig(name_or_path=minilm, chat_template="plain")
    tokenizer = load_tokenizer(cfg)
    assert tokenizer.eos_token == tokenizer.sep_token == "[SEP]" and tokenizer.pad_token == "[PAD]"
    model = build_reward_model(cfg, LoraConfig(r=4, dropout=0.0), tokenizer)
    assert head_name(model.base_model.model) == "classifier"
    assert "base_model.model.classifier.modules_to_save.default.weight" in {
        name for name, p in model.named_parameters() if p.requires_grad
    }
    fit_a_little(model, tokenizer, steps=2)
    ids = encode(tokenizer)
    trained = score(model, tokenizer, ids)
    assert len({round(r, 5) for r in trained.tolist()}) == len(REPLIES)
    # BERT pools its first position: left-padded rows must still put [CLS] there.
    torch.testing.assert_close(score(model, tokenizer, ids, "left"), trained, atol=1e-4, rtol=0)
    save_reward_model(model, tokenizer, tmp_path / "out")
    assert "base_model.model.classifier.weight" in load_file(tmp_path / "out" / "adapter" / "adapter_model.safetensors")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "model").eval()
    torch.testing.assert_close(score(merged, tokenizer, ids), trained, atol=1e-5, rtol=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_quantization_needs_a_gpu(tiny_llama):
    cfg = ModelConfig(name_or_path=str(tiny_llama), load_in_4bit=True)
    with pytest.raises(ConfigError, match="CUDA GPU"):
        build_reward_model(cfg, LoraConfig(), load_tokenizer(cfg))


def test_score_chat_template_is_used_for_a_reward_model_without_one(tiny_llama, tmp_path):
    # A HF checkpoint whose tokenizer has no template: `score.chat_template` must decide how
    # it renders (it was silently replaced by the ModelConfig default, chatml, at load).
    from rmkit.config.sections import ScoreConfig
    from rmkit.scoring.reward_models import load_scoring_model

    folder = tmp_path / "no_template"
    shutil.copytree(tiny_llama, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).chat_template is None
    chat = conversations(["Paris."])[0]
    _, vicuna = load_scoring_model(ScoreConfig(reward_model=str(folder), chat_template="vicuna"))
    assert vicuna.apply_chat_template(chat, tokenize=False).startswith("A chat between")
    _, plain = load_scoring_model(ScoreConfig(reward_model=str(folder), chat_template="plain"))
    assert plain.apply_chat_template(chat, tokenize=False).startswith("Human: What is the capital")
