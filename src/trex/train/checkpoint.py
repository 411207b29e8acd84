"""Training state in safe formats: optimizer tensors in safetensors, everything else in JSON, no pickle.

transformers' Trainer writes optimizer, scheduler and RNG state with ``torch.save``; we keep its resume logic
but store those states so that reading a checkpoint never runs an unpickler. A checkpoint counts only once its
``COMPLETE`` marker exists: the marker is written last, atomically, so a run killed mid-save resumes from the
previous complete checkpoint. An ``IN_PROGRESS`` marker, written first, is what proves a half-written
``checkpoint-N/`` is trex's own: only such folders are ever deleted, never another program's checkpoint.
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
IN_PROGRESS_MARKER = "IN_PROGRESS"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def save_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Per-parameter tensors go to safetensors (``<param key>.<name>``); groups and scalars to JSON."""
    write_optimizer_state(optimizer.state_dict(), directory)


def write_optimizer_state(state: dict[str, Any], directory: Path) -> None:
    """Write an optimizer state dict whose per-parameter keys are indices or, gathered from shards, parameter names."""
    tensors, scalars = {}, {}
    for key, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{key}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{key}.{name}"] = value
    save_tensors_atomic(tensors, directory / OPTIMIZER_TENSORS)
    write_json_atomic(directory / OPTIMIZER_JSON, {"param_groups": state["param_groups"], "scalars": scalars})


def read_optimizer_state(directory: Path) -> dict[str, Any]:
    tensors = load_tensors(directory / OPTIMIZER_TENSORS)
    meta = json.loads((directory / OPTIMIZER_JSON).read_text())
    state: dict[int | str, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        param, name = key.rsplit(".", 1)
        state.setdefault(int(param) if param.isdigit() else param, {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def load_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    optimizer.load_state_dict(read_optimizer_state(directory))


def save_sharded_optimizer(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, directory: Path, write: bool
) -> None:
    """Gather a sharded (FSDP) optimizer's full state and write it like an unsharded one, on the writing rank.

    Every rank must call this (the gather is a collective). The engines' own formats (distributed checkpoint
    metadata, ``torch.save``) are read back with an unpickler; this keeps an FSDP checkpoint as safe as any other.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_optimizer_state_dict(model, optimizer, options=options)
    if write:
        write_optimizer_state(state, directory)


def load_sharded_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Every rank reads the full state written by ``save_sharded_optimizer`` and keeps its own shard of it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, read_optimizer_state(directory), options=options)


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


def begin_checkpoint(directory: Path) -> None:
    """Create the checkpoint folder with trex's in-progress marker, before any other file is written in it."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / IN_PROGRESS_MARKER, {"in_progress": True})


def mark_complete(directory: Path) -> None:
    write_json_atomic(directory / COMPLETE_MARKER, {"complete": True})
    (directory / IN_PROGRESS_MARKER).unlink(missing_ok=True)


def _checkpoint_folders(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(_CHECKPOINT.match(path.name), path) for path in run_dir.glob("checkpoint-*")]
    return sorted((int(match.group(1)), path) for match, path in found if match)


def _is_complete(path: Path) -> bool:
    return not path.is_symlink() and (path / COMPLETE_MARKER).is_file()


def checkpoint_step(path: Path) -> int:
    """The optimizer step a ``checkpoint-N`` folder was written at."""
    match = _CHECKPOINT.match(path.name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint-N folder")
    return int(match.group(1))


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    return [path for _, path in _checkpoint_folders(run_dir) if _is_complete(path)]


def _started_by_trex(path: Path) -> bool:
    """A half-written checkpoint trex can tell is its own: it holds the in-progress marker, or nothing yet."""
    if path.is_symlink() or not path.is_dir():
        return False
    return (path / IN_PROGRESS_MARKER).is_file() or not any(path.iterdir())


def remove_incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """Delete the checkpoint folders a killed trex run left half-written; they must never be resumed from.

    A folder is deleted only if it carries trex's in-progress marker (or is empty): any other incomplete
    ``checkpoint-N`` may be another program's, so nothing is deleted and the error says how to proceed.
    """
    incomplete = [path for _, path in _checkpoint_folders(run_dir) if not _is_complete(path)]
    for path in incomplete:
        if not _started_by_trex(path):
            raise ValueError(
                f"{path} has neither trex's {COMPLETE_MARKER} nor its {IN_PROGRESS_MARKER} marker, so it may be "
                f"another program's checkpoint; move it out of {run_dir} (or delete it if you know it is a "
                "half-written trex checkpoint), then resume again"
            )
    for path in incomplete:
        shutil.rmtree(path)
    return incomplete


def rotate_checkpoints(run_dir: Path, keep: int | None) -> None:
    if keep:
        for path in complete_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(path)
