"""Fixtures for the intuition tests (one thread, fake embedder, topical corpus)."""

from __future__ import annotations

import pytest
import torch

from .fakes import FakeEmbedder, make_corpus


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def corpus() -> tuple[list[str], list[str]]:
    return make_corpus()
