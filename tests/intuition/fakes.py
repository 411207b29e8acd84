"""Test doubles for the intuition tests: a deterministic hashing embedder and a small topical corpus."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import torch

TOPICS = {
    "science": "atom cell energy planet gravity photosynthesis electron molecule orbit fossil".split(),
    "cooking": "butter oven flour recipe boil simmer garlic onion skillet dough".split(),
    "sports": "goal referee striker match league tennis racket stadium coach inning".split(),
    "law": "court judge verdict lawsuit statute appeal witness contract plaintiff jury".split(),
}


class FakeEmbedder:
    """Hashes each lowercase token to a signed coordinate and normalises; counts what it embeds."""

    def __init__(self, dim: int = 256, embedder_id: str | None = None) -> None:
        self.dim = dim
        self.embedder_id = embedder_id or f"fake-hash-{dim}"
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            for token in text.lower().split():
                digest = hashlib.sha256(token.encode("utf-8")).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0 if digest[4] & 1 else -1.0
            if not bool(out[row].any()):
                out[row, 0] = 1.0
        return out / out.norm(dim=1, keepdim=True)


def make_corpus(per_topic: int = 15, words: int = 12, seed: int = 0) -> tuple[list[str], list[str]]:
    """Distinct sentences drawn from disjoint topic vocabularies, with their topic as label."""
    rng = random.Random(seed)
    texts, labels = [], []
    for topic, vocab in TOPICS.items():
        made: set[str] = set()
        while len(made) < per_topic:
            made.add(" ".join(rng.choice(vocab) for _ in range(words)))
        texts.extend(sorted(made))
        labels.extend([topic] * per_topic)
    return texts, labels
