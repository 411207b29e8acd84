"""SentenceTransformerEmbedder: path handling, prefixes, and (slow) the real packaged MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trex.intuition.bank import IntuitionBank, fit_intuition_bank
from trex.intuition.embedder import (
    DEFAULT_EMBEDDER_ID,
    SentenceTransformerEmbedder,
    default_embedder_path,
    default_prefix,
)


def test_missing_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=f"embedder folder not found: {missing}"):
        SentenceTransformerEmbedder(missing)


def test_folder_without_model_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a sentence-transformers folder"):
        SentenceTransformerEmbedder(tmp_path)


def test_packaged_default_folder_exists() -> None:
    assert (default_embedder_path() / "modules.json").is_file()


@pytest.mark.parametrize(
    ("name", "prefix"),
    [("/models/nomic-embed-text-v1", "clustering: "), ("nomic-ai/Nomic-Embed-Text-v1.5", "clustering: "), ("x", "")],
)
def test_nomic_models_get_the_clustering_prefix(name: str, prefix: str) -> None:
    assert default_prefix(name) == prefix


@pytest.mark.slow
def test_real_minilm_embeds_fits_and_reloads(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    embedder = SentenceTransformerEmbedder()
    assert (embedder.embedder_id, embedder.dim) == (DEFAULT_EMBEDDER_ID, 384)
    texts = [
        "The cat sat on the mat.",
        "A kitten is sitting on a rug.",
        "Stock markets fell sharply on Monday.",
        "Shares dropped at the start of the week.",
    ]
    emb = embedder.embed(texts)
    assert emb.dtype == torch.float32 and emb.shape == (4, 384)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[1, 3]

    bank = fit_intuition_bank(texts, 2, embedder=embedder, seed=0)
    assert sorted(bank.cluster_sizes) == [2, 2]
    bank.save(tmp_path / "bank")
    loaded = IntuitionBank.load(tmp_path / "bank")
    assert loaded.embedder is None
    torch.testing.assert_close(loaded.score(texts), bank.score(texts), atol=1e-5, rtol=0)
    assert loaded.embedder is not None and loaded.embedder.embedder_id == DEFAULT_EMBEDDER_ID
