"""The task-category prior: a one-hot of each task's human category, in place of intuition (v2 Table 5's ablation).

The categories and each task's assignment, with their sources, are listed in ``docs/methods.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

CATEGORIES = ("examination", "language", "knowledge", "understanding", "reasoning")
"""OpenCompass's five capability categories, which both papers use to group the suite (v2 App. B, v1 §3.1)."""

TASK_CATEGORIES: dict[str, str] = {
    # stated by the authors (v2 §5.2 and App. B, v1 §4.2)
    "mmlu": "examination",
    "wic": "language",
    "winogrande": "language",
    "boolq": "knowledge",
    "commonsenseqa": "knowledge",
    "multirc": "understanding",
    "openbookqa": "understanding",
    "anli": "reasoning",
    "hellaswag": "reasoning",
    "piqa": "reasoning",
    "siqa": "reasoning",
    "arc_easy": "examination",
    "arc_challenge": "examination",
    "record": "reasoning",
    # not given by the authors: inferred from OpenCompass's dataset table (docs/methods.md)
    "wsc": "language",
    "rte": "reasoning",
    "copa": "reasoning",
    # trex's own choice: the papers call Alpaca "mixed dimensions"
    "alpaca": "language",
}
"""Every training task of the registry; the source of each assignment is tabled in docs/methods.md."""


def category_prior(tasks: Sequence[str]) -> torch.Tensor:
    """One row per task name: the one-hot of its category (an unknown task is an error naming it)."""
    rows = torch.zeros(len(tasks), len(CATEGORIES))
    for row, task in enumerate(tasks):
        category = TASK_CATEGORIES.get(task)
        if category is None:
            raise ValueError(
                f"task {task!r} has no category for the task-category prior; known tasks: "
                f"{', '.join(sorted(TASK_CATEGORIES))}"
            )
        rows[row, CATEGORIES.index(category)] = 1.0
    return rows
