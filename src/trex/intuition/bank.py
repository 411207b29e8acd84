"""The fitted intuition: cluster centroids of the training mixture and how to score instances against them.

An instance's intuition vector ``s`` has one entry per cluster (= per expert): the cosine between the
instance's prompt embedding and each unit centroid (default), or, for faithfulness to the T-REX reference
code, the raw dot product with the unnormalised centroids (cluster means of unit vectors, norm < 1).

On disk a bank is a folder with ``intuition_bank.json`` (metadata, readable) and
``centroids.safetensors`` (tensors); no pickle. It is written atomically: a temporary sibling folder is
filled first and then renamed into place, so a failed save never leaves a half-written bank.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file

from trex.errors import reading
from trex.intuition.cache import CachedEmbedder
from trex.intuition.embedder import DEFAULT_EMBEDDER_ID, Embedder, SentenceTransformerEmbedder, embedder_id_for
from trex.intuition.kmeans import DEFAULT_N_ITER, Backend, assign, normalize_rows, spherical_kmeans
from trex.io import make_temp_dir, save_tensors_atomic, write_text_atomic

logger = logging.getLogger(__name__)

Scoring = Literal["cosine", "dot"]
SCORINGS: tuple[str, ...] = ("cosine", "dot")
METADATA_FILE = "intuition_bank.json"
TENSORS_FILE = "centroids.safetensors"
FORMAT_VERSION = 1
EMBEDDER_NAME_KEYS = ("kind", "base_id", "prefix")
EXAMPLE_MAX_CHARS = 300
# Training-set quantiles of the familiarity signal, stored so callers can tell what "unusually far" means.
FAMILIARITY_QUANTILES = {"p01": 0.01, "p05": 0.05, "p50": 0.5}


@dataclass
class ClusterInfo:
    """What a cluster is made of, for ``trex intuition show``.

    Attributes:
        size: Training instances assigned to it.
        label_counts: Instances per label (task name), most frequent first.
        examples: Texts of the members closest to the centroid (truncated).
    """

    size: int
    label_counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


@dataclass(eq=False)
class IntuitionBank:
    """Unit-norm centroids [K, dim] plus everything needed to score new instances the same way.

    Attributes:
        centroids: Unit-norm centroids [K, dim] (cosine scoring, familiarity).
        raw_centroids: Cluster means [K, dim] before normalisation (``scoring="dot"``).
        embedder_id: Id of the embedder the centroids live in; scoring with another one is refused.
        seed: k-means seed.
        inertia: Sum of ``1 - cos`` to the assigned centroid over the training instances.
        cluster_sizes: Training instances per cluster.
        scoring: ``"cosine"`` (default, in [-1, 1]) or ``"dot"`` (reference-code behaviour).
        backend: k-means backend used.
        embedder_config: Names of the embedder (kind, base id, prefix); never how to load it.
        clusters: Optional per-cluster description.
        familiarity_quantiles: Quantiles of the training instances' familiarity.
    """

    centroids: torch.Tensor
    raw_centroids: torch.Tensor
    embedder_id: str
    seed: int = 0
    inertia: float = 0.0
    cluster_sizes: list[int] = field(default_factory=list)
    scoring: Scoring = "cosine"
    backend: str = ""
    embedder_config: dict[str, str] | None = None
    clusters: list[ClusterInfo] = field(default_factory=list)
    familiarity_quantiles: dict[str, float] = field(default_factory=dict)
    embedder: Embedder | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scoring not in SCORINGS:
            raise ValueError(f"unknown scoring {self.scoring!r}; choose one of {', '.join(SCORINGS)}")
        if self.centroids.ndim != 2 or self.raw_centroids.shape != self.centroids.shape:
            raise ValueError(
                f"centroids {tuple(self.centroids.shape)} and raw centroids {tuple(self.raw_centroids.shape)} "
                "must both be [n_clusters, dim]"
            )
        if not isinstance(self.embedder_id, str):
            raise ValueError(f"embedder_id must be a string, got {self.embedder_id!r}")
        self.embedder_config = embedder_names(self.embedder_config)
        if self.embedder is not None:
            check_embedder(self.embedder, self.embedder_id, self.dim)

    @property
    def n_clusters(self) -> int:
        """K: one cluster per expert of the adapter."""
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.centroids.shape[1])

    def get_embedder(self) -> Embedder:
        """The embedder; without one from the caller, only the packaged default is built, on first use.

        A bank is data that travels inside adapters written by others, so its recorded embedder is only a name
        to check: it never chooses a folder to load a model (and its code) from, nor ``trust_remote_code``.
        """
        if self.embedder is None:
            prefix = (self.embedder_config or {}).get("prefix", "")
            if self.embedder_id != embedder_id_for(DEFAULT_EMBEDDER_ID, prefix):
                raise ValueError(
                    f"this intuition bank was fitted with embedder {self.embedder_id!r}, not the packaged default "
                    f"{DEFAULT_EMBEDDER_ID!r}; a bank never loads a model from a folder it names: pass "
                    "embedder=SentenceTransformerEmbedder(<that model's folder>) to IntuitionBank.load"
                )
            embedder = SentenceTransformerEmbedder(prefix=prefix)
            check_embedder(embedder, self.embedder_id, self.dim)
            self.embedder = embedder
        return self.embedder

    def score_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Intuition vectors [batch, K] (float32) for precomputed embeddings [batch, dim].

        ``cosine`` normalises the rows first, so scores are cosines in [-1, 1] whatever the input norm;
        ``dot`` takes the raw product with the unnormalised centroids, as the reference code did.
        """
        emb = self._check_embeddings(embeddings)
        if self.scoring == "cosine":
            return normalize_rows(emb) @ self.centroids.T
        return emb @ self.raw_centroids.T

    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed prompts with the bank's embedder and return their intuition vectors [batch, K]."""
        return self.score_embeddings(self.get_embedder().embed(_as_text_list(texts)))

    def familiarity_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Best cosine to any centroid [batch]: low means the instance is unlike every training cluster."""
        best, _ = assign(normalize_rows(self._check_embeddings(embeddings)), self.centroids)
        return best

    def familiarity(self, texts: Sequence[str]) -> torch.Tensor:
        """Unfamiliar-input signal for prompts; compare with ``familiarity_quantiles["p05"]`` of training."""
        return self.familiarity_embeddings(self.get_embedder().embed(_as_text_list(texts)))

    def _check_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        emb = torch.as_tensor(embeddings).to(device="cpu", dtype=torch.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"embeddings must be [batch, {self.dim}], got {tuple(emb.shape)}")
        return emb

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the bank into ``directory`` atomically.

        An existing bank there is replaced once the new one is complete. Any other existing folder may hold a
        user's files, so it is replaced only with ``overwrite``; an existing file or link never is.
        """
        target = Path(directory)
        check_replaceable(target, overwrite)
        tmp = make_temp_dir(target.parent, f".{target.name}.tmp-")
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        try:
            tensors = {"centroids": self.centroids.contiguous(), "raw_centroids": self.raw_centroids.contiguous()}
            save_tensors_atomic(tensors, tmp / TENSORS_FILE)
            write_text_atomic(tmp / METADATA_FILE, json.dumps(self._metadata(), indent=2) + "\n")
            if target.exists():
                target.rename(old)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        logger.info("saved intuition bank (%d clusters, %d-d) to %s", self.n_clusters, self.dim, target)
        return target

    def _metadata(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "embedder_id": self.embedder_id,
            "embedder_config": self.embedder_config,
            "n_clusters": self.n_clusters,
            "dim": self.dim,
            "seed": self.seed,
            "inertia": self.inertia,
            "cluster_sizes": self.cluster_sizes,
            "scoring": self.scoring,
            "backend": self.backend,
            "familiarity_quantiles": self.familiarity_quantiles,
            "clusters": [asdict(c) for c in self.clusters],
        }

    @classmethod
    def load(cls, directory: str | Path, embedder: Embedder | None = None) -> IntuitionBank:
        """Read a bank saved by :meth:`save`.

        Args:
            directory: The bank folder.
            embedder: Embedder to score with; its id and dimension must match the bank's. Without one, the
                stored embedder is rebuilt only when :meth:`score` first needs it.

        Raises:
            FileNotFoundError: the folder or one of its files is missing.
            ValueError: inconsistent files, or an embedder that does not match.
        """
        folder = Path(directory)
        for name in (METADATA_FILE, TENSORS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"not an intuition bank: {folder / name} is missing")
        with reading(folder / METADATA_FILE, "bank metadata"):
            meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{folder}: unsupported bank format_version {meta.get('format_version')!r}")
        with reading(folder / TENSORS_FILE, "bank tensors"):
            tensors = load_file(str(folder / TENSORS_FILE))
            centroids, raw_centroids = tensors["centroids"], tensors["raw_centroids"]
        with reading(folder / METADATA_FILE, "bank metadata"):
            if tuple(centroids.shape) != (meta["n_clusters"], meta["dim"]):
                raise ValueError(
                    f"centroids have shape {tuple(centroids.shape)} but the metadata says "
                    f"{meta['n_clusters']} clusters of dimension {meta['dim']}"
                )
            return cls(
                centroids=centroids,
                raw_centroids=raw_centroids,
                embedder_id=meta["embedder_id"],
                seed=meta["seed"],
                inertia=meta["inertia"],
                cluster_sizes=list(meta["cluster_sizes"]),
                scoring=meta["scoring"],
                backend=meta["backend"],
                embedder_config=meta["embedder_config"],
                clusters=[ClusterInfo(**c) for c in meta["clusters"]],
                familiarity_quantiles=dict(meta["familiarity_quantiles"]),
                embedder=embedder,
            )


def check_replaceable(target: Path, overwrite: bool) -> None:
    """Refuse to replace what trex cannot tell it wrote: anything but a folder holding only a bank's files."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ValueError(f"{target} exists and is not a folder; choose another output folder for the bank")
    if target.is_dir() and not overwrite and not {p.name for p in target.iterdir()} <= {METADATA_FILE, TENSORS_FILE}:
        raise ValueError(
            f"{target} exists and is not an intuition bank written by trex; choose another output folder, or "
            "pass --overwrite (overwrite=True) to replace the folder and everything in it"
        )


def embedder_names(config: Any) -> dict[str, str] | None:
    """The names kept from a recorded embedder recipe (kind, base id, prefix).

    Anything else, such as the folder path and ``trust_remote_code`` that banks of trex 0.1 recorded, is a
    loading instruction from whoever wrote the file: dropped on load, so a bank saved again never carries it.
    """
    if not isinstance(config, dict):
        return None
    names = {k: v for k, v in config.items() if k in EMBEDDER_NAME_KEYS and isinstance(v, str)}
    return names or None


def check_embedder(embedder: Embedder, embedder_id: str, dim: int) -> None:
    """Refuse an embedder whose vectors do not live in the bank's space."""
    if embedder.embedder_id != embedder_id:
        raise ValueError(f"embedder mismatch: bank was fitted with {embedder_id!r}, got {embedder.embedder_id!r}")
    if embedder.dim != dim:
        raise ValueError(f"embedder dimension mismatch: bank has dim {dim}, embedder gives {embedder.dim}")


def _as_text_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a sequence of texts, got a single str; wrap it in a list")
    return list(texts)


def validate_texts(texts: Sequence[str], n_clusters: int) -> None:
    """The bad-input checks that can be done on the texts alone, with messages naming the cause."""
    n = len(texts)
    if n == 0:
        raise ValueError("no texts to cluster: the input is empty")
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1:
        raise ValueError(f"n_clusters must be an integer >= 1, got {n_clusters!r}")
    empty = next((i for i, text in enumerate(texts) if not text.strip()), None)
    if empty is not None:
        raise ValueError(f"text {empty} is empty; every instance needs a prompt to embed")
    if n < n_clusters:
        raise ValueError(f"fewer instances ({n}) than clusters ({n_clusters})")
    distinct = len(set(texts))
    if distinct == 1:
        raise ValueError(f"all {n} texts are identical; need at least {n_clusters} distinct texts")
    if distinct < n_clusters:
        raise ValueError(f"only {distinct} distinct texts for {n_clusters} clusters")


def describe_clusters(
    texts: Sequence[str],
    labels: Sequence[str] | None,
    assignments: torch.Tensor,
    similarities: torch.Tensor,
    n_clusters: int,
    n_examples: int = 3,
) -> list[ClusterInfo]:
    """Per cluster: its size, label counts and the distinct member texts closest to the centroid."""
    order = torch.argsort(similarities, descending=True, stable=True).tolist()
    cluster_of = assignments.tolist()
    examples: list[list[str]] = [[] for _ in range(n_clusters)]
    for i in order:
        bucket = examples[cluster_of[i]]
        text = texts[i][:EXAMPLE_MAX_CHARS]
        if len(bucket) < n_examples and text not in bucket:
            bucket.append(text)
    counts: list[Counter[str]] = [Counter() for _ in range(n_clusters)]
    if labels is not None:
        for cluster, label in zip(cluster_of, labels, strict=True):
            counts[cluster][label] += 1
    sizes = torch.bincount(assignments, minlength=n_clusters).tolist()
    return [ClusterInfo(sizes[c], dict(counts[c].most_common()), examples[c]) for c in range(n_clusters)]


def fit_intuition_bank(
    texts: Sequence[str],
    n_clusters: int,
    embedder: Embedder | None = None,
    seed: int = 0,
    backend: Backend = "auto",
    cache_dir: str | Path | None = None,
    labels: Sequence[str] | None = None,
    scoring: Scoring = "cosine",
    max_points: int | None = None,
    n_iter: int = DEFAULT_N_ITER,
) -> IntuitionBank:
    """Embed the training prompts, cluster them, and return the fitted bank.

    Args:
        texts: One prompt per training instance (without the answer).
        n_clusters: K, normally the adapter's number of experts.
        embedder: Defaults to the packaged all-MiniLM-L6-v2.
        seed: k-means seed.
        backend: k-means backend (see :func:`spherical_kmeans`).
        cache_dir: If given, embeddings are cached there and reused by later fits.
        labels: Task name per text, kept only as cluster descriptions.
        scoring: ``"cosine"`` or ``"dot"`` (reference-code behaviour).
        max_points: Fit k-means on a seeded subset of this many instances.
        n_iter: Maximum k-means iterations.
    """
    texts = _as_text_list(texts)
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"got {len(labels)} labels for {len(texts)} texts")
    validate_texts(texts, n_clusters)
    base = embedder if embedder is not None else SentenceTransformerEmbedder()
    source: Embedder = CachedEmbedder(base, cache_dir) if cache_dir is not None else base
    embeddings = source.embed(texts)
    result = spherical_kmeans(embeddings, n_clusters, seed=seed, backend=backend, max_points=max_points, n_iter=n_iter)
    similarities, _ = assign(normalize_rows(embeddings), result.centroids)
    quantiles = torch.quantile(similarities.double(), torch.tensor(list(FAMILIARITY_QUANTILES.values())).double())
    config = getattr(base, "config", None)
    return IntuitionBank(
        centroids=result.centroids,
        raw_centroids=result.raw_centroids,
        embedder_id=base.embedder_id,
        seed=seed,
        inertia=result.inertia,
        cluster_sizes=result.sizes.tolist(),
        scoring=scoring,
        backend=result.backend,
        embedder_config=config() if callable(config) else None,
        clusters=describe_clusters(texts, labels, result.assignments, similarities, n_clusters),
        familiarity_quantiles={k: float(v) for k, v in zip(FAMILIARITY_QUANTILES, quantiles, strict=True)},
        embedder=base,
    )
