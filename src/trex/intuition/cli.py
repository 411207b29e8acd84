"""``trex intuition fit`` / ``trex intuition show``: build an intuition bank from JSONL files and inspect it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trex.errors import UserError, check_range, cli_command
from trex.intuition.bank import IntuitionBank, check_replaceable, fit_intuition_bank
from trex.intuition.embedder import SentenceTransformerEmbedder
from trex.intuition.inputs import read_jsonl_texts, sample_task_texts
from trex.intuition.kmeans import DEFAULT_N_ITER

logger = logging.getLogger(__name__)
console = Console()

app = typer.Typer(
    help="Fit the semantic clusters (intuition bank) of a training mixture, and inspect them.",
    no_args_is_help=True,
    add_completion=False,
)


def read_prompts(
    inputs: Sequence[Path] | None,
    tasks: Sequence[str] | None,
    text_field: str,
    label_field: str | None,
    data_root: Path | None,
    cap: int | None,
    seed: int,
) -> tuple[list[str], list[str]]:
    """Prompts and labels from exactly one source: JSONL files or registry tasks."""
    if bool(inputs) == bool(tasks):
        raise ValueError("give either JSONL files or --task, not both and not neither")
    if inputs:
        texts, labels = read_jsonl_texts(inputs, text_field=text_field, label_field=label_field)
        logger.info("read %d instances from %d file(s)", len(texts), len(inputs))
        return texts, labels
    from trex.data import list_tasks

    names = list_tasks("train") if list(tasks) == ["all"] else list(tasks)
    return sample_task_texts(names, data_root=data_root, cap=cap, seed=seed)


@app.command()
@cli_command
def fit(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Bank folder to write; an existing bank there is replaced.")
    ],
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="JSONL files, one training instance per line (or use --task).")
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(help="Registry task whose train split to use (repeatable; 'all' = every train task)."),
    ] = None,
    data_root: Annotated[
        Path | None,
        typer.Option(help="Suite folder for --task (default: $TREX_DATA, else the subset shipped with trex)."),
    ] = None,
    cap: Annotated[int | None, typer.Option(help="With --task: seeded sample of at most this many per task.")] = None,
    text_field: Annotated[str, typer.Option(help="Field holding the prompt (without the answer).")] = "text",
    label_field: Annotated[
        str | None, typer.Option(help="Field naming the task of each line; default: the file name.")
    ] = None,
    n_clusters: Annotated[int, typer.Option(help="Number of clusters = the adapter's number of experts.")] = 32,
    seed: Annotated[int, typer.Option(help="k-means seed.")] = 0,
    backend: Annotated[str, typer.Option(help="k-means backend: auto, faiss, torch or sklearn.")] = "auto",
    embedder: Annotated[
        Path | None, typer.Option(help="Local sentence-transformers folder; default: packaged all-MiniLM-L6-v2.")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Text prepended before embedding; default: 'clustering: ' for nomic-embed.")
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Run the embedder folder's own code (needed by nomic-embed).")
    ] = False,
    max_seq_length: Annotated[
        int | None, typer.Option(help="Truncate inputs to this many tokens (the reference code: 512 for nomic).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per embedding batch.")] = 64,
    cache_dir: Annotated[Path | None, typer.Option(help="Embedding cache folder, reused across fits.")] = None,
    scoring: Annotated[str, typer.Option(help="cosine (default) or dot (reference-code raw dot product).")] = "cosine",
    max_points: Annotated[
        int | None, typer.Option(help="Fit k-means on a seeded subset of this many instances.")
    ] = None,
    n_iter: Annotated[int, typer.Option(help="Maximum k-means iterations.")] = DEFAULT_N_ITER,
    overwrite: Annotated[
        bool, typer.Option(help="Replace --out even if it is a folder that is not a bank (with all its files).")
    ] = False,
) -> None:
    """Embed training prompts (JSONL files or registry tasks), cluster them and save an intuition bank."""
    for option, value in (("--n-clusters", n_clusters), ("--batch-size", batch_size), ("--n-iter", n_iter)):
        check_range(option, value, 1, allow_none=False)
    for option, value in (("--cap", cap), ("--max-points", max_points), ("--max-seq-length", max_seq_length)):
        check_range(option, value, 1)
    for option, value, known in (
        ("--backend", backend, ("auto", "faiss", "torch", "sklearn")), ("--scoring", scoring, ("cosine", "dot")),
    ):  # fmt: skip
        if value not in known:
            raise UserError(f"{option}: unknown value {value!r}; expected one of {', '.join(known)}")
    check_replaceable(out, overwrite)  # before minutes of embedding, not after
    texts, labels = read_prompts(inputs, task, text_field, label_field, data_root, cap, seed)
    model = SentenceTransformerEmbedder(
        embedder, prefix=prefix, batch_size=batch_size, trust_remote_code=trust_remote_code,
        max_seq_length=max_seq_length,
    )  # fmt: skip
    bank = fit_intuition_bank(
        texts, n_clusters, embedder=model, seed=seed, backend=backend, cache_dir=cache_dir, labels=labels,
        scoring=scoring, max_points=max_points, n_iter=n_iter,
    )  # fmt: skip
    bank.save(out, overwrite=overwrite)
    console.print(
        f"saved {bank.n_clusters} clusters ({bank.dim}-d, {bank.embedder_id}, {bank.backend}) to {out}; "
        f"inertia {bank.inertia:.2f}"
    )


@app.command()
@cli_command
def show(
    bank_dir: Annotated[Path, typer.Argument(help="Bank folder written by `fit`.")],
    examples: Annotated[int, typer.Option(help="Example instances shown per cluster.")] = 3,
    max_chars: Annotated[int, typer.Option(help="Characters shown per example.")] = 120,
    top_labels: Annotated[int, typer.Option(help="Tasks listed per cluster.")] = 4,
) -> None:
    """Print cluster sizes, the tasks each cluster draws from and example instances."""
    check_range("--examples", examples, 0, allow_none=False)
    check_range("--max-chars", max_chars, 2, allow_none=False)
    check_range("--top-labels", top_labels, 0, allow_none=False)
    bank = IntuitionBank.load(bank_dir)
    quantiles = ", ".join(f"{k}={v:.3f}" for k, v in bank.familiarity_quantiles.items())
    console.print(
        f"[bold]{bank_dir}[/bold]: {bank.n_clusters} clusters, dim {bank.dim}, embedder {bank.embedder_id}, "
        f"backend {bank.backend}, seed {bank.seed}, scoring {bank.scoring}, inertia {bank.inertia:.2f}\n"
        f"training familiarity (best cosine) quantiles: {quantiles or 'n/a'}"
    )
    table = Table("cluster", "size", "tasks", "examples", show_lines=True)
    for index, size in enumerate(bank.cluster_sizes):
        info = bank.clusters[index] if index < len(bank.clusters) else None
        tasks = ", ".join(f"{k} ({v})" for k, v in list(info.label_counts.items())[:top_labels]) if info else ""
        shown = [_shorten(t, max_chars) for t in (info.examples[:examples] if info else [])]
        table.add_row(str(index), str(size), tasks, "\n".join(f"- {t}" for t in shown))
    console.print(table)


def _shorten(text: str, max_chars: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"
