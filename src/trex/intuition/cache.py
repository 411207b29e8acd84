"""On-disk embedding cache, so a second fit over the same mixture re-embeds nothing.

Layout: ``<cache_dir>/<embedder slug>/shard-<uuid>.safetensors``. Each shard holds ``digests``
(uint8 [n, 32], the sha256 of each text) and ``embeddings`` (float32 [n, dim]); its metadata names the
embedder id. New embeddings are written in shards of ``flush_every`` texts, each through a temporary
file and ``os.replace``, so an interrupted run keeps every finished shard and a rerun resumes from there.
No pickle: shards are safetensors.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from trex.intuition.embedder import Embedder
from trex.io import save_tensors_atomic

logger = logging.getLogger(__name__)

SHARD_GLOB = "shard-*.safetensors"


def text_digest(text: str) -> bytes:
    """sha256 of the UTF-8 text: the cache key within one embedder."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def embedder_slug(embedder_id: str) -> str:
    """A folder name for an embedder id: readable part plus a hash so distinct ids never collide."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id)[:64]
    return f"{readable}-{hashlib.sha256(embedder_id.encode('utf-8')).hexdigest()[:12]}"


class CachedEmbedder:
    """Wraps an :class:`Embedder`; looks texts up by (embedder id, sha256) before embedding them.

    Args:
        embedder: The embedder that computes missing vectors.
        cache_dir: Root folder of the cache (shared by several embedders; each gets a sub-folder).
        flush_every: Missing texts embedded and written per shard; bounds the work lost on interruption.
    """

    def __init__(self, embedder: Embedder, cache_dir: str | Path, flush_every: int = 2048) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.inner = embedder
        self.embedder_id = embedder.embedder_id
        self.dim = embedder.dim
        self.flush_every = flush_every
        self.folder = Path(cache_dir) / embedder_slug(embedder.embedder_id)
        self._index: dict[bytes, torch.Tensor] | None = None

    def config(self) -> dict[str, Any] | None:
        """The wrapped embedder's rebuild recipe (the cache does not change the vectors)."""
        config = getattr(self.inner, "config", None)
        return config() if callable(config) else None

    def _load_index(self) -> dict[bytes, torch.Tensor]:
        """Read every finished shard once; shards of another embedder id or dimension are skipped loudly."""
        if self._index is not None:
            return self._index
        index: dict[bytes, torch.Tensor] = {}
        for shard in sorted(self.folder.glob(SHARD_GLOB)):
            with safe_open(str(shard), framework="pt") as handle:
                shard_id = (handle.metadata() or {}).get("embedder_id")
            tensors = load_file(str(shard))
            digests, embeddings = tensors["digests"], tensors["embeddings"]
            if shard_id != self.embedder_id or embeddings.shape[1] != self.dim:
                logger.warning(
                    "skipping cache shard %s: embedder %r/%d-d, expected %r/%d-d",
                    shard,
                    shard_id,
                    embeddings.shape[1],
                    self.embedder_id,
                    self.dim,
                )
                continue
            for digest, row in zip(digests.numpy(), embeddings, strict=True):
                index[digest.tobytes()] = row
        logger.info("embedding cache %s: %d entries", self.folder, len(index))
        self._index = index
        return index

    def _write_shard(self, digests: list[bytes], embeddings: torch.Tensor) -> None:
        """Add one shard atomically, so an interrupted run never leaves a shard that loads half-written."""
        digest_tensor = torch.frombuffer(bytearray(b"".join(digests)), dtype=torch.uint8).reshape(len(digests), 32)
        save_tensors_atomic(
            {"digests": digest_tensor, "embeddings": embeddings.contiguous()},
            self.folder / f"shard-{uuid.uuid4().hex}.safetensors",
            metadata={"embedder_id": self.embedder_id},
        )

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed texts, computing (and caching) only those never seen by this embedder id."""
        index = self._load_index()
        digests = [text_digest(t) for t in texts]
        missing: dict[bytes, str] = {}
        for digest, text in zip(digests, texts, strict=True):
            if digest not in index and digest not in missing:
                missing[digest] = text
        if missing:
            hits = sum(digest in index for digest in digests)
            logger.info("embedding %d new texts (%d of %d inputs found in the cache)", len(missing), hits, len(texts))
        pending = list(missing.items())
        for start in range(0, len(pending), self.flush_every):
            chunk = pending[start : start + self.flush_every]
            vectors = self.inner.embed([text for _, text in chunk]).to(torch.float32)
            self._write_shard([digest for digest, _ in chunk], vectors)
            index.update(zip((digest for digest, _ in chunk), vectors, strict=True))
        if not texts:
            return torch.empty(0, self.dim, dtype=torch.float32)
        return torch.stack([index[d] for d in digests])
