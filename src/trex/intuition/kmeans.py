"""Spherical k-means: clusters of unit vectors whose centroids are unit vectors too.

Every backend only proposes centroids. The final assignment, cluster sizes, inertia and the raw
(unnormalised) centroids are then computed here, once, in the same way for every backend, so results
are comparable across backends and the raw centroids (the paper-faithful scoring option) are always the
plain mean of each cluster's members.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

logger = logging.getLogger(__name__)

Backend = Literal["auto", "faiss", "torch", "sklearn"]
BACKENDS: tuple[str, ...] = ("auto", "faiss", "torch", "sklearn")
DEFAULT_N_ITER = 25
# Rows scored per matmul when assigning points, to bound memory on large inputs.
ASSIGN_CHUNK = 65536


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of :func:`spherical_kmeans`.

    Attributes:
        centroids: Unit-norm centroids [K, d] (float32).
        raw_centroids: Mean of each cluster's (unit) members [K, d], norm <= 1; what the reference code
            scored with.
        assignments: Cluster index of every input row [n] (int64), by highest cosine.
        inertia: Sum over rows of ``1 - cos(x, assigned centroid)``; lower is tighter.
        sizes: Members per cluster [K] (int64).
        backend: The backend that produced the centroids.
        iterations: Lloyd iterations the backend ran (torch stops early once assignments are stable).
    """

    centroids: torch.Tensor
    raw_centroids: torch.Tensor
    assignments: torch.Tensor
    inertia: float
    sizes: torch.Tensor
    backend: str
    iterations: int


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows; a zero row has no direction, so it is an error rather than a silent NaN."""
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("embeddings contain an all-zero row, which has no direction on the unit sphere")
    return x / norms


def count_distinct_rows(x: torch.Tensor) -> int:
    """Number of distinct rows, by their exact bytes (cheap even for 100k rows)."""
    array = np.ascontiguousarray(x.numpy())
    return len({row.tobytes() for row in array})


def resolve_backend(backend: str) -> str:
    """Map ``auto`` to faiss when it is installed, else to the torch implementation."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown k-means backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "faiss" if importlib.util.find_spec("faiss") is not None else "torch"
    return backend


def assign(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best centroid per row and its cosine (rows and centroids unit-norm), in chunks."""
    best_sim, best_idx = [], []
    for start in range(0, x.shape[0], ASSIGN_CHUNK):
        sims = x[start : start + ASSIGN_CHUNK] @ centroids.T
        values, indices = sims.max(dim=1)
        best_sim.append(values)
        best_idx.append(indices)
    return torch.cat(best_sim), torch.cat(best_idx)


def kmeans_pp_init(x: torch.Tensor, n_clusters: int, seed: int) -> torch.Tensor:
    """Seeded greedy k-means++ on the sphere, shared by every backend so they start from the same centroids.

    Distances are ``1 - cos`` (half the squared chord). Each step draws a few candidates with probability
    proportional to the distance to the nearest chosen centroid and keeps the one that lowers the total
    most; plain k-means++ too often puts two seeds in one tight group on near-orthogonal data. Rows equal
    to a chosen centroid have weight 0, so the K picks are distinct whenever K distinct rows exist.
    """
    generator = torch.Generator().manual_seed(seed)
    n_trials = 2 + int(math.log(n_clusters))
    first = int(torch.randint(x.shape[0], (1,), generator=generator))
    picks = [first]
    dist = (1.0 - x @ x[first]).clamp(min=0)
    for _ in range(1, n_clusters):
        candidates = torch.multinomial(dist.double(), n_trials, replacement=True, generator=generator)
        trial = torch.minimum(dist.unsqueeze(1), (1.0 - x @ x[candidates].T).clamp(min=0))
        best = int(trial.sum(dim=0).argmin())
        picks.append(int(candidates[best]))
        dist = trial[:, best]
    return x[picks].clone()


def _torch_centroids(x: torch.Tensor, init: torch.Tensor, n_iter: int) -> tuple[torch.Tensor, int]:
    """Lloyd iterations on the sphere: assign by cosine, centroid = normalised member sum.

    An emptied cluster is re-seeded with the row that is currently worst served, which is deterministic
    and keeps K clusters alive.
    """
    n_clusters = init.shape[0]
    centroids = init
    previous = None
    iterations = 0
    for _ in range(n_iter):
        sims, labels = assign(x, centroids)
        if previous is not None and torch.equal(labels, previous):
            break
        iterations += 1
        previous = labels
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=n_clusters)
        order = torch.argsort(sims, stable=True)
        empty = torch.nonzero(counts == 0).flatten()
        sums[empty] = x[order[: len(empty)]]
        centroids = normalize_rows(sums)
    return centroids, iterations


def _faiss_centroids(x: torch.Tensor, init: torch.Tensor, n_iter: int) -> tuple[torch.Tensor, int]:
    """faiss ``Kmeans(spherical=True)`` on all given rows (faiss's own silent sub-sampling disabled)."""
    import faiss

    n, dim = x.shape
    n_clusters = init.shape[0]
    kmeans = faiss.Kmeans(
        dim,
        n_clusters,
        niter=n_iter,
        spherical=True,
        verbose=False,
        max_points_per_centroid=math.ceil(n / n_clusters) + 1,
    )
    kmeans.train(np.ascontiguousarray(x.numpy(), dtype=np.float32), init_centroids=init.numpy())
    return torch.from_numpy(np.array(kmeans.centroids, dtype=np.float32)), len(kmeans.obj)


def _sklearn_centroids(x: torch.Tensor, init: torch.Tensor, n_iter: int) -> tuple[torch.Tensor, int]:
    """Euclidean k-means on unit vectors, centroids normalised afterwards: an approximation of spherical
    k-means (for unit vectors, squared distance = 2 - 2 cos, but the mean is not renormalised in between).
    """
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=init.shape[0], init=init.numpy(), n_init=1, max_iter=n_iter)
    kmeans.fit(x.numpy())
    return torch.from_numpy(kmeans.cluster_centers_.astype(np.float32)), int(kmeans.n_iter_)


_BACKEND_FNS = {"faiss": _faiss_centroids, "torch": _torch_centroids, "sklearn": _sklearn_centroids}


def spherical_kmeans(
    embeddings: torch.Tensor | np.ndarray,
    n_clusters: int,
    seed: int = 0,
    backend: Backend = "auto",
    max_points: int | None = None,
    n_iter: int = DEFAULT_N_ITER,
) -> KMeansResult:
    """Cluster rows of ``embeddings`` by cosine into ``n_clusters`` unit centroids.

    Args:
        embeddings: [n, d] vectors; rows are L2-normalised here.
        n_clusters: K.
        seed: Seeds initialisation and sub-sampling; the same seed gives the same centroids.
        backend: ``faiss``, ``torch`` (short pure-torch Lloyd), ``sklearn`` (Euclidean approximation) or
            ``auto`` (faiss if installed).
        max_points: Fit on a seeded random subset of this many rows (all rows are still assigned). ``None``
            fits on every row; sub-sampling is never silent.
        n_iter: Maximum iterations.

    Raises:
        ValueError: empty input, fewer rows or fewer distinct rows than clusters, bad options.
    """
    x = torch.as_tensor(embeddings).detach().to(device="cpu", dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"spherical_kmeans needs a non-empty [n, d] matrix, got shape {tuple(x.shape)}")
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    n = x.shape[0]
    if n < n_clusters:
        raise ValueError(f"fewer instances ({n}) than clusters ({n_clusters})")
    x = normalize_rows(x)
    name = resolve_backend(backend)

    fit_x = x
    if max_points is not None:
        if max_points < n_clusters:
            raise ValueError(f"max_points ({max_points}) must be >= n_clusters ({n_clusters})")
        if max_points < n:
            subset = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_points]
            fit_x = x[torch.sort(subset).values]
            logger.info("k-means: fitting on %d of %d rows (max_points)", max_points, n)
    distinct = count_distinct_rows(fit_x)
    if distinct < n_clusters:
        raise ValueError(f"only {distinct} distinct embeddings for {n_clusters} clusters")

    init = kmeans_pp_init(fit_x, n_clusters, seed)
    proposed, iterations = _BACKEND_FNS[name](fit_x, init, n_iter)
    centroids = normalize_rows(proposed.contiguous())
    sims, labels = assign(x, centroids)
    sizes = torch.bincount(labels, minlength=n_clusters)
    sums = torch.zeros_like(centroids).index_add_(0, labels, x)
    raw = sums / sizes.clamp(min=1).unsqueeze(1).to(sums.dtype)
    inertia = float((1.0 - sims.double()).sum())
    if bool((sizes == 0).any()):
        logger.warning("k-means (%s): %d clusters ended empty", name, int((sizes == 0).sum()))
    return KMeansResult(centroids, raw, labels, inertia, sizes, name, iterations)
