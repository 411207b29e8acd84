"""Fixtures for the data tests: one CPU thread, a tiny in-process tokenizer, and the data roots."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not depend on a TREX_DATA set in the developer's shell."""
    monkeypatch.delenv("TREX_DATA", raising=False)


def _byte_tokenizer(chat: bool) -> PreTrainedTokenizerFast:
    """One token per byte (a BPE without merges): reversible, so truncation can be checked exactly."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<s>", "</s>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    model = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=model,
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="session")
def byte_tokenizer() -> PreTrainedTokenizerFast:
    return _byte_tokenizer(chat=False)


@pytest.fixture(scope="session")
def chat_tokenizer() -> PreTrainedTokenizerFast:
    return _byte_tokenizer(chat=True)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "manifest.json").is_file():
        pytest.skip(f"the staged suite is not present at {SHARED_DATA}")
    return SHARED_DATA
