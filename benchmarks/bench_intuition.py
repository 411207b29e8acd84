"""Intuition throughput: sentences/s of the embedder and spherical k-means time per backend, in one process.

    python benchmarks/bench_intuition.py                       # packaged MiniLM, 100k x 384 -> 32, CPU
    python benchmarks/bench_intuition.py --points 20000 --backends faiss torch

Embedding: short sentences (~12 tokens) and long texts (~120 tokens), timed after a burn-in batch. k-means:
random unit vectors, every backend started from the same seeded k-means++ centroids with the same iteration
cap, timed end to end through `spherical_kmeans` (init and final assignment included, which are shared),
backends interleaved over --repeats rounds; the median is the number to read.
One JSON per run goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
import sentence_transformers
import sklearn
import torch

import trex
from trex.intuition import SentenceTransformerEmbedder, spherical_kmeans
from trex.intuition.kmeans import kmeans_pp_init, normalize_rows

WORDS = (
    "the a model river city learned quickly under bright morning light while several students argued about "
    "history science music and small details of an old map found near the harbour before winter returned"
).split()


def make_texts(n: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "." for _ in range(n)]


def time_embedding(embedder: SentenceTransformerEmbedder, texts: list[str], repeats: int) -> dict[str, float]:
    embedder.embed(texts[: embedder.batch_size])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed(texts)
        times.append(time.perf_counter() - start)
    tokenizer = embedder._model.tokenizer
    tokens = statistics.mean(len(tokenizer(t)["input_ids"]) for t in texts)
    median = statistics.median(times)
    return {"texts": len(texts), "mean_tokens": tokens, "median_s": median, "sentences_per_s": len(texts) / median}


def time_kmeans(x: torch.Tensor, k: int, backends: list[str], n_iter: int, repeats: int) -> dict[str, dict]:
    """Run the backends interleaved (A, B, C, A, B, C, ...) so drift in machine load hits all of them alike."""
    seconds: dict[str, list[float]] = {backend: [] for backend in backends}
    results = {}
    for _ in range(repeats):
        for backend in backends:
            start = time.perf_counter()
            results[backend] = spherical_kmeans(x, k, seed=0, backend=backend, n_iter=n_iter)
            seconds[backend].append(time.perf_counter() - start)
    return {
        backend: {
            "median_s": statistics.median(seconds[backend]),
            "min_s": min(seconds[backend]),
            "iterations": results[backend].iterations,
            "inertia": results[backend].inertia,
            "min_size": int(results[backend].sizes.min()),
            "max_size": int(results[backend].sizes.max()),
        }
        for backend in backends
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder", default=None, help="sentence-transformers folder (default: packaged MiniLM)")
    parser.add_argument("--short", type=int, default=1024, help="short sentences to embed")
    parser.add_argument("--long", type=int, default=256, help="~120-token texts to embed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=32)
    parser.add_argument("--n-iter", type=int, default=25)
    parser.add_argument("--backends", nargs="+", default=["faiss", "torch", "sklearn"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    embedder = SentenceTransformerEmbedder(args.embedder)
    embedding = {
        "short": time_embedding(embedder, make_texts(args.short, 10, seed=0), args.repeats),
        "long": time_embedding(embedder, make_texts(args.long, 100, seed=1), args.repeats),
    }
    print(f"embedding, {embedder.embedder_id} ({embedder.dim}-d), batch {embedder.batch_size}, {args.threads} threads")
    for name, row in embedding.items():
        print(
            f"  {name:<5} {row['texts']:5d} texts x {row['mean_tokens']:5.1f} tokens: "
            f"{row['sentences_per_s']:8.1f} sentences/s"
        )

    gen = torch.Generator().manual_seed(0)
    x = normalize_rows(torch.randn(args.points, args.dim, generator=gen))
    start = time.perf_counter()
    kmeans_pp_init(x, args.clusters, seed=0)
    init_s = time.perf_counter() - start
    kmeans = time_kmeans(x, args.clusters, args.backends, args.n_iter, args.repeats)
    print(
        f"spherical k-means, {args.points} x {args.dim} unit vectors -> {args.clusters} clusters, "
        f"<= {args.n_iter} iterations (shared k-means++ init: {init_s:.2f} s)"
    )
    reference = kmeans[args.backends[0]]["median_s"]
    for backend, row in kmeans.items():
        print(
            f"  {backend:<8} median {row['median_s']:6.2f} s  min {row['min_s']:6.2f} s  "
            f"({row['median_s'] / reference:4.2f}x {args.backends[0]})  {row['iterations']:3d} iterations  "
            f"inertia {row['inertia']:.1f}  sizes {row['min_size']}..{row['max_size']}"
        )

    record = {
        "benchmark": "intuition",
        "args": vars(args),
        "embedding": embedding,
        "kmeans": kmeans,
        "kmeans_init_s": init_s,
        "versions": {
            "trex": trex.__version__,
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "sklearn": sklearn.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "numpy": np.__version__,
        },
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "threads": args.threads,
            "python": platform.python_version(),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = Path(__file__).parent / "results" / f"intuition-cpu-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
