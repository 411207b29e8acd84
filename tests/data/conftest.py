"""Fixtures for the data tests: one CPU thread, a tiny in-process tokenizer, and the data roots."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from trex.pretrained import byte_tokenizer as make_byte_tokenizer

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not depend on a TREX_DATA set in the developer's shell."""
    monkeypatch.delenv("TREX_DATA", raising=False)


def _byte_tokenizer(chat: bool) -> PreTrainedTokenizerFast:
    """One token per byte (a BPE without merges): reversible, so truncation can be checked exactly."""
    tokenizer = make_byte_tokenizer()
    if not chat:
        tokenizer.chat_template = None
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
