"""IntuitionBank: scores against independent numpy references, save/load, and bad-input messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trex.intuition import bank as bank_module
from trex.intuition.bank import IntuitionBank, fit_intuition_bank

from .fakes import FakeEmbedder

K = 4


@pytest.fixture
def fitted(fake_embedder: FakeEmbedder, corpus: tuple[list[str], list[str]]) -> IntuitionBank:
    texts, labels = corpus
    return fit_intuition_bank(texts, K, embedder=fake_embedder, seed=0, backend="torch", labels=labels)


def assert_same_bank(a: IntuitionBank, b: IntuitionBank) -> None:
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.raw_centroids, b.raw_centroids)
    for name in ("embedder_id", "seed", "inertia", "cluster_sizes", "scoring", "backend", "embedder_config"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.clusters == b.clusters and a.familiarity_quantiles == b.familiarity_quantiles


def numpy_embed(texts: list[str]) -> np.ndarray:
    return FakeEmbedder().embed(texts).numpy().astype(np.float64)


def test_cosine_scores_equal_numpy_cosine(fitted: IntuitionBank) -> None:
    queries = ["atom orbit energy", "judge jury verdict appeal", "unrelated words entirely"]
    e = numpy_embed(queries)
    c = fitted.centroids.numpy().astype(np.float64)
    expected = (e @ c.T) / np.outer(np.linalg.norm(e, axis=1), np.linalg.norm(c, axis=1))
    scores = fitted.score(queries)
    assert scores.dtype == torch.float32 and scores.shape == (3, K)
    np.testing.assert_allclose(scores.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(fitted.familiarity(queries).numpy(), expected.max(axis=1), atol=1e-6)


def test_cosine_ignores_input_norm(fitted: IntuitionBank) -> None:
    e = FakeEmbedder().embed(["boil garlic onion"])
    torch.testing.assert_close(fitted.score_embeddings(3.0 * e), fitted.score_embeddings(e))


def test_dot_scoring_is_raw_product_with_cluster_means(
    fake_embedder: FakeEmbedder, corpus: tuple[list[str], list[str]]
) -> None:
    texts, _ = corpus
    bank = fit_intuition_bank(texts, K, embedder=fake_embedder, backend="torch", scoring="dot")
    train = numpy_embed(texts)
    labels = (train @ bank.centroids.numpy().T).argmax(axis=1)
    means = np.stack([train[labels == k].mean(axis=0) for k in range(K)])
    query = numpy_embed(["striker goal referee"])
    np.testing.assert_allclose(bank.score(["striker goal referee"]).numpy(), query @ means.T, atol=1e-6)
    assert (np.linalg.norm(means, axis=1) < 1).all()


def test_topics_become_clusters_and_metadata_counts(
    fitted: IntuitionBank, corpus: tuple[list[str], list[str]]
) -> None:
    assert sorted(fitted.cluster_sizes) == [15, 15, 15, 15]
    for info, size in zip(fitted.clusters, fitted.cluster_sizes, strict=True):
        assert sum(info.label_counts.values()) == size == info.size
        assert len(info.label_counts) == 1
        assert len(info.examples) == 3 and set(info.examples) <= set(corpus[0])
    q = fitted.familiarity_quantiles
    assert -1 <= q["p01"] <= q["p05"] <= q["p50"] <= 1


def test_save_load_round_trip(tmp_path: Path, fitted: IntuitionBank) -> None:
    target = fitted.save(tmp_path / "adapter" / "intuition")
    loaded = IntuitionBank.load(target, embedder=FakeEmbedder())
    assert_same_bank(loaded, fitted)
    assert (loaded.n_clusters, loaded.dim) == (K, 256)
    queries = ["flour dough oven", "tennis racket"]
    torch.testing.assert_close(loaded.score(queries), fitted.score(queries), rtol=0, atol=0)
    assert sorted(p.name for p in target.parent.iterdir()) == ["intuition"]


def test_save_replaces_and_failed_save_leaves_old_bank(
    tmp_path: Path, fitted: IntuitionBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "bank"
    fitted.save(target)
    fitted.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bank_module, "save_tensors_atomic", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]
    assert_same_bank(IntuitionBank.load(target, embedder=FakeEmbedder()), fitted)

    with pytest.raises(OSError):
        fitted.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_load_rejects_mismatched_embedder(tmp_path: Path, fitted: IntuitionBank) -> None:
    fitted.save(tmp_path / "bank")
    with pytest.raises(ValueError, match="embedder mismatch: bank was fitted with 'fake-hash-256', got 'other'"):
        IntuitionBank.load(tmp_path / "bank", embedder=FakeEmbedder(embedder_id="other"))
    with pytest.raises(ValueError, match="dimension mismatch: bank has dim 256, embedder gives 16"):
        IntuitionBank.load(tmp_path / "bank", embedder=FakeEmbedder(dim=16, embedder_id="fake-hash-256"))


def test_load_without_rebuildable_embedder_explains(tmp_path: Path, fitted: IntuitionBank) -> None:
    fitted.save(tmp_path / "bank")
    loaded = IntuitionBank.load(tmp_path / "bank")
    assert loaded.score_embeddings(FakeEmbedder().embed(["x"])).shape == (1, K)
    with pytest.raises(ValueError, match="not the packaged default.*pass embedder="):
        loaded.score(["x"])


def test_load_missing_or_inconsistent_files(tmp_path: Path, fitted: IntuitionBank) -> None:
    with pytest.raises(FileNotFoundError, match="intuition_bank.json is missing"):
        IntuitionBank.load(tmp_path / "nothing")
    fitted.save(tmp_path / "bank")
    meta = tmp_path / "bank" / "intuition_bank.json"
    meta.write_text(meta.read_text().replace('"n_clusters": 4', '"n_clusters": 8'))
    with pytest.raises(ValueError, match=r"centroids have shape \(4, 256\) but the metadata says 8 clusters"):
        IntuitionBank.load(tmp_path / "bank")


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "no texts to cluster: the input is empty"),
        (["same text"] * 10, "all 10 texts are identical; need at least 4 distinct texts"),
        (["a", "b", "c"], r"fewer instances \(3\) than clusters \(4\)"),
        (["a", "b", "c", "a", "b"], "only 3 distinct texts for 4 clusters"),
    ],
)
def test_fit_bad_input_messages(fake_embedder: FakeEmbedder, texts: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_intuition_bank(texts, K, embedder=fake_embedder)
    assert fake_embedder.calls == 0


def test_fit_rejects_bad_options(fake_embedder: FakeEmbedder, corpus: tuple[list[str], list[str]]) -> None:
    texts, labels = corpus
    with pytest.raises(ValueError, match="got 3 labels for 60 texts"):
        fit_intuition_bank(texts, K, embedder=fake_embedder, labels=labels[:3])
    with pytest.raises(ValueError, match="unknown scoring 'euclid'"):
        fit_intuition_bank(texts, K, embedder=fake_embedder, scoring="euclid")
    with pytest.raises(TypeError, match="got a single str"):
        fit_intuition_bank("one long string", K, embedder=fake_embedder)


def test_fit_is_deterministic_and_second_fit_with_cache_embeds_nothing(
    tmp_path: Path, corpus: tuple[list[str], list[str]]
) -> None:
    texts, _ = corpus
    embedder = FakeEmbedder()
    first = fit_intuition_bank(texts, K, embedder=embedder, cache_dir=tmp_path, backend="faiss")
    assert embedder.texts_embedded == len(texts)
    second = fit_intuition_bank(texts, K, embedder=embedder, cache_dir=tmp_path, backend="faiss")
    assert embedder.texts_embedded == len(texts)
    torch.testing.assert_close(first.centroids, second.centroids, rtol=0, atol=0)
