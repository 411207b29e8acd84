"""Spherical k-means: determinism, unit centroids, and the derived statistics against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trex.intuition.kmeans import spherical_kmeans

BACKENDS = ["torch", "faiss", "sklearn"]


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blobs(per_blob: int = 40, n_blobs: int = 4, d: int = 16, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.eye(d, dtype=np.float32)[:n_blobs]
    x = np.concatenate([c + spread * rng.standard_normal((per_blob, d)).astype(np.float32) for c in centers])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_gives_identical_centroids(backend: str) -> None:
    x = unit_rows(300, 12)
    first = spherical_kmeans(x, 5, seed=3, backend=backend)
    second = spherical_kmeans(x, 5, seed=3, backend=backend)
    assert torch.equal(first.centroids, second.centroids)
    assert torch.equal(first.assignments, second.assignments)


@pytest.mark.parametrize("backend", BACKENDS)
def test_centroids_are_unit_and_statistics_match_numpy(backend: str) -> None:
    x = unit_rows(400, 10, seed=1)
    result = spherical_kmeans(x, 6, seed=0, backend=backend)
    c = result.centroids.numpy().astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    sims = x.astype(np.float64) @ c.T
    labels = result.assignments.numpy()
    np.testing.assert_array_equal(labels, sims.argmax(axis=1))
    np.testing.assert_array_equal(result.sizes.numpy(), np.bincount(labels, minlength=6))
    assert result.inertia == pytest.approx(float((1.0 - sims.max(axis=1)).sum()), rel=1e-5)
    for k in range(6):
        np.testing.assert_allclose(result.raw_centroids[k].numpy(), x[labels == k].mean(axis=0), atol=1e-5)
    assert result.backend == backend


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_recovers_well_separated_blobs(backend: str) -> None:
    x = blobs()
    result = spherical_kmeans(x, 4, seed=0, backend=backend)
    labels = result.assignments.numpy().reshape(4, 40)
    assert all(len(set(row)) == 1 for row in labels)
    assert len({row[0] for row in labels}) == 4


def test_max_points_subsamples_but_assigns_everything() -> None:
    x = unit_rows(500, 8, seed=2)
    first = spherical_kmeans(x, 4, seed=1, backend="torch", max_points=100)
    second = spherical_kmeans(x, 4, seed=1, backend="torch", max_points=100)
    assert torch.equal(first.centroids, second.centroids)
    assert first.assignments.shape == (500,)
    assert int(first.sizes.sum()) == 500


def test_auto_backend_uses_faiss_when_installed() -> None:
    assert spherical_kmeans(unit_rows(50, 4), 2, backend="auto").backend == "faiss"


@pytest.mark.parametrize(
    ("data", "k", "message"),
    [
        (np.zeros((0, 4), dtype=np.float32), 2, "non-empty"),
        (unit_rows(3, 4), 5, "fewer instances (3) than clusters (5)"),
        (np.tile(unit_rows(1, 4), (10, 1)), 3, "only 1 distinct embeddings for 3 clusters"),
        (np.zeros((4, 4), dtype=np.float32), 2, "all-zero row"),
    ],
)
def test_bad_input_messages(data: np.ndarray, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spherical_kmeans(data, k)


def test_unknown_backend_and_bad_max_points() -> None:
    with pytest.raises(ValueError, match="unknown k-means backend 'gpu'"):
        spherical_kmeans(unit_rows(10, 4), 2, backend="gpu")
    with pytest.raises(ValueError, match=r"max_points \(1\) must be >= n_clusters \(2\)"):
        spherical_kmeans(unit_rows(10, 4), 2, max_points=1)
