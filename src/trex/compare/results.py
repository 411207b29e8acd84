"""What a comparison's folder holds: the finished evaluation units and their per-instance correctness.

Only units whose ``done.json`` exists are read; everything else is reported as missing, never filled in. The
statistics need every method's answers on the *same* instances in the same order, so instances are matched by
(task, uid, index) from ``predictions.jsonl`` rather than trusted to line up by position.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trex.compare.config import BASE, CompareConfig
from trex.compare.driver import DONE, Step, read_json, steps

logger = logging.getLogger(__name__)

METRIC_FIELDS = {"acc": "correct", "acc_norm": "correct_norm"}
"""The predictions.jsonl field that says whether an instance counts as right under each metric."""


def read_predictions(path: Path) -> dict[str, dict[tuple[str, int], dict]]:
    """Rows of a predictions.jsonl by task, then by (uid, index)."""
    rows: dict[str, dict[tuple[str, int], dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.setdefault(row["task"], {})[(str(row["uid"]), int(row["index"]))] = row
    return rows


@dataclass
class ComparisonFiles:
    """The finished evaluations of a comparison: seeds per method, and the steps that are not done."""

    config: CompareConfig
    seeds: dict[str, list[int | None]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def eval_folder(self, method: str, seed: int | None) -> Path:
        return Step(method, seed, "eval").folder(self.config)

    def train_folder(self, method: str, seed: int) -> Path:
        return Step(method, seed, "train").folder(self.config)

    def done(self, folder: Path) -> dict | None:
        return read_json(folder / DONE)


def scan(config: CompareConfig) -> ComparisonFiles:
    """Which evaluation units are finished (base first, then methods in config order) and which steps are not."""
    files = ComparisonFiles(config)
    for step in steps(config):
        if (step.folder(config) / DONE).is_file():
            if step.kind == "eval":
                files.seeds.setdefault(step.method, []).append(step.seed)
        else:
            files.missing.append(step.label)
    return files


def correctness(files: ComparisonFiles, metric: str) -> dict[str, dict[str, np.ndarray]]:
    """``{method: {task: (seeds, instances) 0/1 array}}`` over the instances every finished unit scored.

    Columns follow (uid, index) order, identical for every method. A task some finished unit lacks is dropped for
    all, and instances scored by some units only are dropped (both logged), so no method is compared on others'
    instances. A metric the predictions do not hold (acc_norm under generate scoring) gives an empty mapping.
    """
    key = METRIC_FIELDS[metric]
    loaded = {
        (method, seed): read_predictions(files.eval_folder(method, seed) / "predictions.jsonl")
        for method, seeds in files.seeds.items()
        for seed in seeds
    }
    if not loaded:
        return {}
    tasks = [t for t in next(iter(loaded.values())) if all(t in rows for rows in loaded.values())]
    result: dict[str, dict[str, np.ndarray]] = {m: {} for m in files.seeds}
    for task in tasks:
        shared = set.intersection(*(set(rows[task]) for rows in loaded.values()))
        largest = max(len(rows[task]) for rows in loaded.values())
        if len(shared) < largest:
            logger.warning("%s: %d of %d instances were scored by every unit; using those", task, len(shared), largest)
        order = sorted(shared, key=lambda uid_index: (uid_index[1], uid_index[0]))
        for method, seeds in files.seeds.items():
            rows = [[loaded[(method, seed)][task][k].get(key) for k in order] for seed in seeds]
            if any(value is None for row in rows for value in row):
                return {}
            result[method][task] = np.array(rows, dtype=float)
    return result


def method_label(method: str) -> str:
    return "base (untrained)" if method == BASE else method
