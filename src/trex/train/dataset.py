"""From a recipe's data section to padded batches that carry each instance's prior row (when the method takes one)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from trex.data import IGNORE_INDEX, TaskInstance, TokenizedExample, build_mixture, list_tasks, load_task
from trex.data.user import load_jsonl_task
from trex.train.recipe import DataSection

logger = logging.getLogger(__name__)


def training_task_names(data: DataSection) -> list[str]:
    """The recipe's training tasks with ``suite`` expanded (registry names or JSONL paths, each once)."""
    names: list[str] = []
    for entry in data.tasks:
        names += list_tasks("train") if entry == "suite" else [entry]
    if not names:
        raise ValueError("data.tasks is empty: name at least one task, 'suite', or a JSONL file")
    return list(dict.fromkeys(names))


def load_training_tasks(data: DataSection) -> dict[str, list[TaskInstance]]:
    """Task name -> training instances: registry names, ``suite`` (every training task), or JSONL paths."""
    tasks: dict[str, list[TaskInstance]] = {}
    for name in training_task_names(data):
        if name.endswith(".jsonl") or Path(name).is_file():
            instances = load_jsonl_task(name)
            tasks[instances[0].task] = instances
        else:
            tasks[name] = load_task(name, "train", data_root=data.data_root)
    return tasks


def build_training_mixture(data: DataSection) -> tuple[list[TaskInstance], dict[str, list[TaskInstance]]]:
    tasks = load_training_tasks(data)
    mixture = build_mixture(
        tasks, caps=data.max_per_task, sampling=data.sampling, temperature=data.temperature, seed=data.seed
    )
    return mixture, tasks


@dataclass
class IntuitionExamples(Dataset):
    """Tokenised examples, each with the prior row (intuition) of its instance when the method takes one."""

    examples: Sequence[TokenizedExample]
    intuition: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.intuition is not None and len(self.examples) != self.intuition.shape[0]:
            raise ValueError(f"{len(self.examples)} examples but {self.intuition.shape[0]} intuition rows")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        features = self.examples[index].features()
        return features if self.intuition is None else {**features, "intuition": self.intuition[index]}


@dataclass
class IntuitionCollator:
    """Right-pads ids (pad token), masks (0) and labels (ignored); stacks intuition rows when examples have them."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features], dtype=torch.long)

        batch = {
            "input_ids": pad("input_ids", self.pad_token_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", IGNORE_INDEX),
        }
        if "intuition" in features[0]:
            batch["intuition"] = torch.stack([torch.as_tensor(f["intuition"], dtype=torch.float32) for f in features])
        return batch
