"""Stage, for users who are online, the authors' evaluation split that the offline suite lacks.

The T-REX authors evaluate MMLU on `load_dataset("cais/mmlu", "all")["validation"]` (1,531 questions;
RoyZry98/T-REX-Pytorch chat.py:299-303). The staged suite holds only MMLU's dev and test files, so the registry's
`official` split for MMLU reads `mmlu/validation.jsonl`, which this module writes: downloaded with `datasets` and
converted to nutcracker-db's schema, so the reader of the other MMLU files reads it unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trex.data.errors import DataError
from trex.data.registry import is_instance_root
from trex.io import write_text_atomic

logger = logging.getLogger(__name__)

MMLU_HUB = ("cais/mmlu", "all", "validation")
"""Dataset, config and split of the authors' MMLU evaluation."""
MMLU_VALIDATION_SIZE = 1531
MMLU_VALIDATION_FILE = "mmlu/validation.jsonl"
"""Where the registry's `official` MMLU split looks, relative to the data root."""
_LETTERS = "ABCD"


def mmlu_record(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One cais/mmlu row (question, subject, choices, answer index) in nutcracker-db's schema."""
    for name in ("question", "subject", "choices", "answer"):
        if name not in row:
            raise DataError(f"{where}: missing column {name!r} (columns: {sorted(row)})")
    choices, answer = list(row["choices"]), row["answer"]
    if len(choices) != len(_LETTERS) or not all(isinstance(c, str) for c in choices):
        raise DataError(f"{where}: column 'choices' must hold {len(_LETTERS)} strings, got {choices!r}")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(_LETTERS):
        raise DataError(f"{where}: column 'answer' must be an index 0-3, got {answer!r}")
    return {
        "subject": row["subject"],
        "centerpiece": row["question"],
        "options": choices,
        "correct_options": [_LETTERS[answer]],
        "correct_options_idx": [answer],
        "correct_options_literal": [choices[answer]],
    }


def write_mmlu_validation(rows: Iterable[Mapping[str, Any]], data_root: Path, *, overwrite: bool = False) -> Path:
    """Convert cais/mmlu validation rows and write them atomically to `<data_root>/mmlu/validation.jsonl`."""
    if is_instance_root(data_root):
        raise DataError(
            f"{data_root} is in the common instance format (it has index.json); stage into a suite folder such as "
            "../shared/data, which the registry reads MMLU's official split from"
        )
    target = data_root / MMLU_VALIDATION_FILE
    if target.exists() and not overwrite:
        raise DataError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    source = "/".join(MMLU_HUB)
    records = [mmlu_record(row, f"{source} row {n}") for n, row in enumerate(rows, start=1)]
    if not records:
        raise DataError(f"{source} has no rows")
    if len(records) != MMLU_VALIDATION_SIZE:
        logger.warning("%s has %d rows, not the %d the authors evaluated", source, len(records), MMLU_VALIDATION_SIZE)
    write_text_atomic(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return target


def stage_mmlu_validation(data_root: Path, *, overwrite: bool = False) -> Path:
    """Download the authors' MMLU split from the Hugging Face hub (needs a network) and stage it under `data_root`."""
    import datasets  # imported here: slow to import and only this command needs it

    path, config, split = MMLU_HUB
    return write_mmlu_validation(datasets.load_dataset(path, config, split=split), data_root, overwrite=overwrite)
