"""The paper's motivating figure on our data: do semantic clusters follow the human task categories?

    python scripts/make_intuition_figure.py --data-root ../shared/data            # ~300 per task, 32 clusters

Embeds a seeded sample of each training task's instances (the text is `trex.data.intuition_text`: the
letters-format prompt without the answer), fits an intuition bank, and writes to --out (default docs/img):
  intuition_projection.png   2-D t-SNE (or PCA) of the embeddings, coloured by task and by cluster
  intuition_tables.md        task x cluster contingency table and the agreement table
  intuition_metrics.json     the numbers, the settings and the versions
Agreement of the paper's five human categories with the clusters is measured on the instances of the
categorised tasks: normalised mutual information and purity (each cluster votes for its majority category),
next to the same scores for the clusters shuffled across instances (chance level) and for K = 5 clusters.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sklearn
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import normalized_mutual_info_score

import trex
from trex.data import list_tasks
from trex.intuition import CachedEmbedder, SentenceTransformerEmbedder, fit_intuition_bank, spherical_kmeans
from trex.intuition.inputs import sample_task_texts

logger = logging.getLogger("make_intuition_figure")

# The five human categories of the T-REX paper; ARC covers both of our ARC tasks.
CATEGORIES = {
    "reasoning": ["anli", "record", "hellaswag"],
    "examination": ["mmlu", "arc_easy", "arc_challenge"],
    "language": ["wic", "winogrande"],
    "understanding": ["openbookqa", "multirc"],
    "knowledge": ["commonsenseqa", "boolq"],
}
CATEGORY_OF = {task: category for category, tasks in CATEGORIES.items() for task in tasks}
EXCLUDED_TASKS = ("alpaca",)  # free-text instructions, not part of the paper's multitask suite
SHUFFLE_REPEATS = 20


def purity(truth: list[str], clusters: np.ndarray) -> float:
    """Share of instances whose cluster's majority class is their own class."""
    votes: dict[int, Counter[str]] = {}
    for label, cluster in zip(truth, clusters.tolist(), strict=True):
        votes.setdefault(cluster, Counter())[label] += 1
    return sum(c.most_common(1)[0][1] for c in votes.values()) / len(truth)


def agreement(truth: list[str], clusters: np.ndarray, seed: int) -> dict[str, float]:
    """NMI and purity of clusters against classes, with the mean over shuffled cluster labels as chance level."""
    rng = np.random.default_rng(seed)
    shuffled = [rng.permutation(clusters) for _ in range(SHUFFLE_REPEATS)]
    return {
        "nmi": float(normalized_mutual_info_score(truth, clusters)),
        "purity": purity(truth, clusters),
        "nmi_shuffled": float(np.mean([normalized_mutual_info_score(truth, s) for s in shuffled])),
        "purity_shuffled": float(np.mean([purity(truth, s) for s in shuffled])),
    }


def project(embeddings: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    return TSNE(n_components=2, metric="cosine", init="pca", random_state=seed, perplexity=30).fit_transform(
        embeddings
    )


def plot(points: np.ndarray, labels: list[str], clusters: np.ndarray, method: str, path: Path) -> None:
    tasks = sorted(set(labels))
    task_colors = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    cluster_colors = np.concatenate([plt.get_cmap("tab20b")(np.arange(20)), plt.get_cmap("tab20c")(np.arange(20))])
    fig, (left, right) = plt.subplots(1, 2, figsize=(18, 8.5))
    for i, task in enumerate(tasks):
        mask = np.array([label == task for label in labels])
        category = CATEGORY_OF.get(task, "uncategorised")
        left.scatter(*points[mask].T, s=5, color=task_colors[i % 20], label=f"{task} ({category})")
    left.legend(markerscale=3, fontsize=8, loc="best", ncol=2)
    left.set_title(f"coloured by task ({method})")
    right.scatter(*points.T, s=5, c=cluster_colors[clusters % len(cluster_colors)])
    for cluster in np.unique(clusters):
        cx, cy = np.median(points[clusters == cluster], axis=0)
        right.annotate(str(cluster), (cx, cy), fontsize=8, weight="bold", ha="center")
    right.set_title(f"coloured by cluster ({clusters.max() + 1} spherical k-means clusters)")
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def contingency_markdown(labels: list[str], clusters: np.ndarray, n_clusters: int) -> str:
    tasks = sorted(set(labels), key=lambda t: (list(CATEGORY_OF).index(t) if t in CATEGORY_OF else 99, t))
    header = "| task (category) | n | " + " | ".join(str(c) for c in range(n_clusters)) + " |"
    lines = [header, "|" + "---|" * (n_clusters + 2)]
    for task in tasks:
        counts = np.bincount(clusters[np.array([label == task for label in labels])], minlength=n_clusters)
        cells = " | ".join(str(c) if c else "" for c in counts)
        lines.append(f"| {task} ({CATEGORY_OF.get(task, '-')}) | {counts.sum()} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--cap", type=int, default=300, help="instances sampled per task")
    parser.add_argument("--clusters", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default=None, help="sentence-transformers folder (default: packaged MiniLM)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "trex" / "embeddings")
    parser.add_argument("--projection", choices=["tsne", "pca"], default="tsne")
    parser.add_argument("--bank-out", type=Path, default=None, help="also save the fitted bank here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    tasks = [t for t in list_tasks("train") if t not in EXCLUDED_TASKS]
    texts, labels = sample_task_texts(tasks, data_root=args.data_root, cap=args.cap, seed=args.seed)
    embedder = SentenceTransformerEmbedder(args.embedder)
    embed_start = time.perf_counter()
    embeddings = CachedEmbedder(embedder, args.cache_dir).embed(texts)
    embed_s = time.perf_counter() - embed_start
    bank = fit_intuition_bank(
        texts, args.clusters, embedder=embedder, seed=args.seed, cache_dir=args.cache_dir, labels=labels
    )
    if args.bank_out is not None:
        bank.save(args.bank_out)
    clusters = bank.score_embeddings(embeddings).argmax(dim=1).numpy()

    categorised = [i for i, label in enumerate(labels) if label in CATEGORY_OF]
    category_truth = [CATEGORY_OF[labels[i]] for i in categorised]
    five = spherical_kmeans(embeddings[categorised], len(CATEGORIES), seed=args.seed).assignments.numpy()
    metrics = {
        f"categories_vs_{args.clusters}_clusters": agreement(category_truth, clusters[categorised], args.seed),
        f"categories_vs_{len(CATEGORIES)}_clusters": agreement(category_truth, five, args.seed),
        f"tasks_vs_{args.clusters}_clusters": agreement(labels, clusters, args.seed),
    }

    args.out.mkdir(parents=True, exist_ok=True)
    points = project(embeddings.numpy(), args.projection, args.seed)
    plot(points, labels, clusters, args.projection, args.out / "intuition_projection.png")
    rows = [
        "| classes vs clusters | instances | NMI | NMI (shuffled) | purity | purity (shuffled) |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        n = len(labels) if name.startswith("tasks") else len(categorised)
        rows.append(
            f"| {name.replace('_', ' ')} | {n} | {m['nmi']:.3f} | {m['nmi_shuffled']:.3f} | "
            f"{m['purity']:.3f} | {m['purity_shuffled']:.3f} |"
        )
    tables = "\n\n".join(["\n".join(rows), contingency_markdown(labels, clusters, args.clusters)])
    (args.out / "intuition_tables.md").write_text(tables + "\n", encoding="utf-8")
    record = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "instances": len(texts),
        "per_task": dict(Counter(labels)),
        "embedder_id": bank.embedder_id,
        "bank": {
            "inertia": bank.inertia,
            "cluster_sizes": bank.cluster_sizes,
            "backend": bank.backend,
            "familiarity_quantiles": bank.familiarity_quantiles,
        },
        "metrics": metrics,
        "seconds": {"embedding": embed_s, "total": time.perf_counter() - start},
        "versions": {"trex": trex.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__},
        "hardware": {"machine": platform.machine(), "threads": args.threads},
    }
    (args.out / "intuition_metrics.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info(
        "wrote %s/intuition_{projection.png,tables.md,metrics.json} in %.0f s", args.out, record["seconds"]["total"]
    )


if __name__ == "__main__":
    main()
