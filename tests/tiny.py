"""A tiny Llama chat model, its tokenizer and a reward model on it, built locally for tests (no hub, no download).

head_dim is 64 (hidden 128, 2 heads) because vLLM's CPU attention rejects smaller heads.
"""

from __future__ import annotations

from pathlib import Path

from rmkit.data.templates import CHATML

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "system user assistant Hello! How are you? I am fine, thank you. What is the capital of France?",
    "Paris is the capital of France. Write a short poem about the sea. The sea is blue and wide.",
    "good bad great terrible yes no maybe always never please thanks sorry help answer question",
    "one two three four five six seven eight nine ten red green blue cat dog bird tree house",
    "Tell me a story. Once upon a time there was a small robot who loved to read books.",
]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    fast.chat_template = CHATML
    return fast


def build_tiny_llama(path: str | Path, *, seed: int = 0, layers: int = 2) -> Path:
    """Save a tiny LlamaForCausalLM + chat tokenizer to ``path`` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_reward_model(tiny_llama: Path, path: str | Path, seed: int) -> Path:
    """A 1-label classifier on the tiny LM, with its own template (plain), unlike the policy's chatml."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rmkit.data.templates import PLAIN

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.chat_template = PLAIN
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
