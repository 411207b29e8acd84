"""Semantic intuition for T-REX: embed instance prompts, cluster the training mixture, score new instances.

The per-instance intuition vector ``s`` (one entry per expert) is the similarity of the prompt's
sentence embedding to the k-means centroids of the training mixture. See ``docs/intuition.md``.
"""

from trex.intuition.bank import ClusterInfo, IntuitionBank, fit_intuition_bank
from trex.intuition.cache import CachedEmbedder
from trex.intuition.embedder import (
    DEFAULT_EMBEDDER_ID,
    Embedder,
    SentenceTransformerEmbedder,
    default_embedder_path,
)
from trex.intuition.kmeans import KMeansResult, spherical_kmeans

__all__ = [
    "DEFAULT_EMBEDDER_ID",
    "CachedEmbedder",
    "ClusterInfo",
    "Embedder",
    "IntuitionBank",
    "KMeansResult",
    "SentenceTransformerEmbedder",
    "default_embedder_path",
    "fit_intuition_bank",
    "spherical_kmeans",
]
