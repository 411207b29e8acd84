"""``trex compare --workers N``: N processes on one comparison, each taking the next unit no live worker holds.

Units are independent and one process of torch rarely uses many cores well on small models, so a machine with
more cores than a unit uses runs several units at once. The extra workers are the same command started as child
processes (the step locks of ``trex.compare.driver`` keep them off each other's units); each gets an equal share of
the cores as its thread count unless ``OMP_NUM_THREADS`` is set, and writes its log to ``<output_dir>/workers/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch


def threads_per_worker(workers: int) -> int:
    """``OMP_NUM_THREADS`` when the user set it, else the cores split evenly (at least one each)."""
    given = os.environ.get("OMP_NUM_THREADS")
    if given and given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, (os.cpu_count() or 1) // workers)


def start_workers(
    config_path: Path,
    overrides: Sequence[str],
    only: Sequence[str] | None,
    workers: int,
    log_dir: Path,
    until: str | None = None,
) -> list[subprocess.Popen]:
    """Start ``workers - 1`` extra ``trex compare`` processes; this process is the first worker. Sets this
    process's torch threads to its share."""
    threads = threads_per_worker(workers)
    torch.set_num_threads(threads)
    command = [sys.executable, "-m", "trex", "compare", str(config_path), *overrides]
    for method in only or ():
        command += ["--only", method]
    if until is not None:
        command += ["--until", until]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log_dir.mkdir(parents=True, exist_ok=True)
    children = []
    for number in range(2, workers + 1):
        with open(log_dir / f"worker-{number}.log", "ab") as log:
            children.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    return children


def wait_for(children: Sequence[subprocess.Popen]) -> list[int]:
    """Wait for the extra workers; their exit codes (0: nothing left for them)."""
    return [child.wait() for child in children]
