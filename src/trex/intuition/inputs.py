"""Training prompts for ``trex intuition fit``: from JSONL files, or sampled from the task registry."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path

from trex.data.io import read_jsonl

logger = logging.getLogger(__name__)


def read_jsonl_texts(
    paths: Sequence[str | Path], text_field: str = "text", label_field: str | None = None
) -> tuple[list[str], list[str]]:
    """Texts and labels from JSONL files, one instance per line.

    The text field must hold the prompt of the instance without its answer; it is embedded as is.
    Labels come from ``label_field`` when given, otherwise each file's stem names the task of its lines,
    so ``show`` can say which tasks a cluster draws from.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a line is not a JSON object or lacks a string in the requested field (file and line
            number are named).
    """
    texts: list[str] = []
    labels: list[str] = []
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        for line_no, record in read_jsonl(path):
            where = f"{path}:{line_no}"
            texts.append(_string_field(record, text_field, where))
            labels.append(_string_field(record, label_field, where) if label_field else path.stem)
    return texts, labels


def _string_field(record: dict, field: str, where: str) -> str:
    if field not in record:
        raise ValueError(f"{where}: no field {field!r} (fields: {', '.join(sorted(record))})")
    value = record[field]
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{where}: field {field!r} is empty (an instance needs a prompt to embed)")
    return value


def sample_task_texts(
    tasks: Sequence[str], data_root: str | Path | None = None, cap: int | None = None, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Intuition texts of the train split of registry tasks, labelled with the task name.

    The text is ``trex.data.intuition_text`` (the prompt without the answer), the same string the adapter
    embeds at training and inference time. With ``cap``, each task contributes a seeded random sample of at
    most ``cap`` instances (the seed is combined with the task name, so adding a task changes no other sample).
    """
    from trex.data import intuition_text, load_task

    texts: list[str] = []
    labels: list[str] = []
    for task in tasks:
        instances = load_task(task, "train", data_root=data_root)
        texts.extend(intuition_text(instance) for instance in instances)
        labels.extend([task] * len(instances))
        logger.info("%-14s %6d train instances", task, len(instances))
    return cap_per_label(texts, labels, cap, seed)


def cap_per_label(
    texts: Sequence[str], labels: Sequence[str], cap: int | None, seed: int = 0
) -> tuple[list[str], list[str]]:
    """At most ``cap`` texts per label, a seeded random sample (v1 clusters samples drawn from each task).

    The seed is combined with the label, so adding a task changes no other task's sample; order within a label
    follows the sample, labels keep their first-seen order.
    """
    if cap is None:
        return list(texts), list(labels)
    if cap < 1:
        raise ValueError(f"the per-task cap must be >= 1, got {cap}")
    by_label: dict[str, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        by_label.setdefault(label, []).append(text)
    kept_texts: list[str] = []
    kept_labels: list[str] = []
    for label, group in by_label.items():
        chosen = random.Random(f"{seed}-{label}").sample(group, cap) if cap < len(group) else group
        kept_texts += chosen
        kept_labels += [label] * len(chosen)
    return kept_texts, kept_labels
