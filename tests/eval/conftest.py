"""Fixtures for the evaluation tests: one CPU thread, a tiny tokenizer and model, and a saved tiny adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from trex_testing import tiny_llama

torch.set_num_threads(1)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MERGES = [(":", "Ġ"), ("Ġ", "A"), ("Ġ", "B"), ("e", "r"), ("Ġ", "t"), ("Ġt", "h"), ("Ġth", "e")]
"""A few merges, one across the prompt/answer boundary (":" + " "), so lm-eval's split convention matters."""


class FixedBank:
    """A stand-in intuition bank: a deterministic score per text (its length and vowel count), width K."""

    def __init__(self, n_clusters: int) -> None:
        self.n_clusters = n_clusters
        self.calls: list[list[str]] = []

    def score(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        rows = [[((len(t) * (k + 1) + sum(c in "aeiou" for c in t)) % 7) / 7.0 for k in range(self.n_clusters)]
                for t in texts]  # fmt: skip
        return torch.tensor(rows)


def make_tokenizer(chat: bool = False) -> PreTrainedTokenizerFast:
    """Byte-level BPE with a handful of merges; ids stay below the tiny model's vocabulary of 1000."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    for special in ("<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    model = Tokenizer(models.BPE(vocab=vocab, merges=MERGES))
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    model.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=model, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )  # fmt: skip
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture(scope="session")
def chat_tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer(chat=True)


@pytest.fixture
def tiny():
    return tiny_llama(0)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TREX_DATA", raising=False)


@pytest.fixture
def adapter_dir(tmp_path: Path) -> Path:
    """A saved T-REX adapter on `tiny_llama(0)` with non-trivial weights and no intuition bank."""
    from trex_testing import randomize_adapter

    from trex.config import TRexConfig
    from trex.model import get_trex_model

    model = get_trex_model(tiny_llama(0), TRexConfig())
    randomize_adapter(model)
    model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


@pytest.fixture
def fixed_bank():
    """The `FixedBank` class (fixtures are how test modules reach conftest helpers under importlib mode)."""
    return FixedBank
