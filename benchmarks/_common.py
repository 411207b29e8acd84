"""Shared by the benchmark scripts: the run record (versions, hardware, load), interleaved timing, JSON output."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
PACKAGES = ("trex", "torch", "transformers", "peft", "lm-eval", "tokenizers")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions, hardware, thread count and the load average at the time of the call."""
    hardware: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "device": device,
    }
    if device.startswith("cuda"):
        hardware["gpu"] = torch.cuda.get_device_name()
    return {
        "versions": {"python": sys.version.split()[0], **{p: _version(p) for p in PACKAGES}},
        "commit": _commit(),
        "hardware": hardware,
    }


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str = "cpu") -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1, device: str = "cpu"
) -> dict[str, list[float]]:
    """Round-robin over ``fns`` (A, B, C, A, B, C, ...), so drift in machine load hits every one alike.

    The order rotates each round, so no function always runs right after the same neighbour.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(fns[name], device))
    return times


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "n": len(seconds),
        "all_s": [round(s, 6) for s in seconds],
    }


def write_result(kind: str, record: dict[str, Any], out: Path | None = None, device: str = "cpu") -> Path:
    """One JSON per run: ``<kind>-<device>-<UTC time>.json`` under benchmarks/results/ (or ``out``)."""
    directory = out or RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    record = {
        "benchmark": kind,
        "date": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        **environment(device),
        **record,
    }
    path = directory / f"{kind}-{device.split(':')[0]}-{now:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def saved_storage_bytes(module: torch.nn.Module, run: Callable[[], object]) -> int:
    """Bytes of the unique non-parameter storages autograd keeps while ``run()`` builds its graph (counted)."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(storages.values())


def cloze_items(lm, task: str, data_root: str | Path, limit: int) -> list:
    """The first ``limit`` evaluation instances of ``task`` as cloze loglik items, as ``trex eval`` builds them."""
    from trex.data import load_task
    from trex.eval import LoglikItem
    from trex.eval.requests import build_requests

    requests = build_requests(
        task, load_task(task, "eval", data_root, limit), "cloze", lm.tokenizer, lm.chat_template, lm.context_length
    ).requests
    return [LoglikItem(r.prompt, r.options, r.intuition_text) for r in requests]
