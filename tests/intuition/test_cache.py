"""Embedding cache: hits re-embed nothing, values are the inner embedder's, interruption keeps finished shards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from trex.intuition.cache import CachedEmbedder

from .fakes import FakeEmbedder


def test_second_pass_and_new_process_embed_nothing(tmp_path: Path, corpus: tuple[list[str], list[str]]) -> None:
    texts, _ = corpus
    inner = FakeEmbedder()
    first = CachedEmbedder(inner, tmp_path).embed(texts)
    assert inner.texts_embedded == len(texts)
    torch.testing.assert_close(first, FakeEmbedder().embed(texts), rtol=0, atol=0)

    again = CachedEmbedder(inner, tmp_path).embed(list(reversed(texts)))
    assert inner.texts_embedded == len(texts)
    torch.testing.assert_close(again, first.flip(0), rtol=0, atol=0)


def test_only_new_and_deduplicated_texts_are_embedded(tmp_path: Path) -> None:
    inner = FakeEmbedder()
    cache = CachedEmbedder(inner, tmp_path)
    cache.embed(["a b", "c d"])
    out = cache.embed(["a b", "e f", "e f", "c d"])
    assert inner.texts_embedded == 3
    torch.testing.assert_close(out[1], out[2], rtol=0, atol=0)


def test_embedders_do_not_share_entries(tmp_path: Path) -> None:
    CachedEmbedder(FakeEmbedder(embedder_id="one"), tmp_path).embed(["x y"])
    other = FakeEmbedder(embedder_id="two")
    CachedEmbedder(other, tmp_path).embed(["x y"])
    assert other.texts_embedded == 1


def test_empty_input_gives_empty_tensor(tmp_path: Path) -> None:
    assert CachedEmbedder(FakeEmbedder(dim=8), tmp_path).embed([]).shape == (0, 8)


class FailsOnSecondCall(FakeEmbedder):
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        if self.calls == 1:
            raise KeyboardInterrupt
        return super().embed(texts)


def test_interrupted_run_keeps_finished_shards_and_resumes(tmp_path: Path) -> None:
    texts = [f"text number {i}" for i in range(10)]
    with pytest.raises(KeyboardInterrupt):
        CachedEmbedder(FailsOnSecondCall(), tmp_path, flush_every=4).embed(texts)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".safetensors"

    resumed = FakeEmbedder()
    out = CachedEmbedder(resumed, tmp_path, flush_every=4).embed(texts)
    assert resumed.texts_embedded == 6
    torch.testing.assert_close(out, FakeEmbedder().embed(texts), rtol=0, atol=0)
