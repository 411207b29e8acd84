"""Markdown tables of results: the paper's Table 1 layout for the 14 tasks, and a per-task detail table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trex.eval.scoring import TaskResult

TABLE1_COLUMNS: tuple[tuple[str, str], ...] = (
    ("MUL.", "multirc"), ("MMLU", "mmlu"), ("BOO.", "boolq"), ("WIC", "wic"), ("WG", "winogrande"),
    ("WSC", "wsc"), ("ANLI", "anli"), ("PIQA", "piqa"), ("SIQA", "siqa"), ("RTE", "rte"), ("COPA", "copa"),
    ("OBQA", "openbookqa"), ("CSQA", "commonsenseqa"), ("HS", "hellaswag"),
)  # fmt: skip
"""(column header, task) in the order of the T-REX paper's Table 1; AVG follows."""

METRICS = ("acc", "acc_norm")


def metric_value(result: TaskResult, metric: str) -> float | None:
    """`acc` or `acc_norm` (loglik only; generate scoring has acc alone) of a task result."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return result.accuracy if metric == "acc" else result.accuracy_norm


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def table1(rows: Sequence[tuple[str, Mapping[str, TaskResult]]], metric: str = "acc") -> str:
    """Accuracy (%) per row in the paper's Table 1 columns. AVG is the mean over the 14 tasks; when some are
    missing it averages those present and says how many ("45.2 (9/14)")."""
    header = "| Model | " + " | ".join(h for h, _ in TABLE1_COLUMNS) + " | AVG |"
    lines = [header, "|---|" + "---:|" * (len(TABLE1_COLUMNS) + 1)]
    for label, results in rows:
        values = [metric_value(results[t], metric) if t in results else None for _, t in TABLE1_COLUMNS]
        present = [v for v in values if v is not None]
        avg = _pct(sum(present) / len(present)) if present else "–"
        if present and len(present) < len(TABLE1_COLUMNS):
            avg += f" ({len(present)}/{len(TABLE1_COLUMNS)})"
        lines.append(f"| {label} | " + " | ".join(_pct(v) for v in values) + f" | {avg} |")
    return "\n".join(lines)


def detail_table(results: Mapping[str, TaskResult]) -> str:
    """One line per task: counts (`mapped`: yes/no answers read as letters), accuracy with its 95% interval,
    acc_norm when scored by loglik, speed."""
    lines = [
        "| Task | n | acc % | 95% CI | acc_norm % | truncated | dropped | skipped | unreadable | mapped | inst/s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, r in results.items():
        ci = f"{100 * r.ci95[0]:.1f}–{100 * r.ci95[1]:.1f}" if r.n else "–"
        lines.append(
            f"| {task} | {r.n} | {_pct(r.accuracy)} | {ci} | {_pct(r.accuracy_norm)} | {r.truncated} | {r.dropped} "
            f"| {r.skipped} | {r.unreadable} | {r.mapped} | {r.instances_per_s:.2f} |"
        )
    return "\n".join(lines)
