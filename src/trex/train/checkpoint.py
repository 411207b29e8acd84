"""Training state in safe formats: optimizer tensors in safetensors, everything else in JSON, no pickle.

transformers' Trainer writes optimizer, scheduler and RNG state with ``torch.save``; we keep its resume logic
but store those states so that reading a checkpoint never runs an unpickler. A checkpoint counts only once its
``COMPLETE`` marker exists: the marker is written last, atomically, so a run killed mid-save resumes from the
previous complete checkpoint.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trex.io import atomic_write, load_tensors, save_tensors_atomic

COMPLETE_MARKER = "COMPLETE"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def save_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Per-parameter tensors go to safetensors (``<param index>.<name>``); groups and scalars to JSON."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    save_tensors_atomic(tensors, directory / OPTIMIZER_TENSORS)
    write_json_atomic(directory / OPTIMIZER_JSON, {"param_groups": state["param_groups"], "scalars": scalars})


def load_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    tensors = load_tensors(directory / OPTIMIZER_TENSORS)
    meta = json.loads((directory / OPTIMIZER_JSON).read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_scheduler(scheduler: Any, directory: Path) -> None:
    write_json_atomic(directory / SCHEDULER_JSON, scheduler.state_dict())


def load_scheduler(scheduler: Any, directory: Path) -> None:
    scheduler.load_state_dict(json.loads((directory / SCHEDULER_JSON).read_text()))


def save_rng(directory: Path, process_index: int) -> None:
    """Python, numpy, torch CPU (and CUDA) generators, so a resumed run draws the same numbers."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.random.get_rng_state_all())})
    save_tensors_atomic(tensors, directory / f"rng_state_{process_index}.safetensors")
    write_json_atomic(
        directory / f"rng_state_{process_index}.json",
        {"python": [version, list(internal), gauss], "numpy": [kind, keys.tolist(), pos, has_gauss, cached]},
    )


def load_rng(directory: Path, process_index: int) -> bool:
    tensor_file = directory / f"rng_state_{process_index}.safetensors"
    if not tensor_file.is_file():
        return False
    tensors = load_tensors(tensor_file)
    data = json.loads((directory / f"rng_state_{process_index}.json").read_text())
    version, internal, gauss = data["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = data["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.random.set_rng_state(tensors["cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.random.set_rng_state_all(cuda)
    return True


def mark_complete(directory: Path) -> None:
    write_json_atomic(directory / COMPLETE_MARKER, {"complete": True})


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = []
    for path in run_dir.glob("checkpoint-*"):
        match = _CHECKPOINT.match(path.name)
        if match and (path / COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def remove_incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """Delete checkpoint folders a killed run left half-written; they must never be resumed from."""
    removed = []
    for path in run_dir.glob("checkpoint-*"):
        if _CHECKPOINT.match(path.name) and not (path / COMPLETE_MARKER).is_file():
            shutil.rmtree(path)
            removed.append(path)
    return removed


def rotate_checkpoints(run_dir: Path, keep: int | None) -> None:
    if keep:
        for path in complete_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(path)
