"""Two-process DDP on CPU (gloo) takes the same optimizer steps as one process with gradient accumulation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from trex.config import ADAPTER_WEIGHTS_NAME
from trex.io import load_tensors

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "tiny-cpu.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], output_dir: Path, cache_dir: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    overrides = [
        f"output_dir={output_dir}",
        f"intuition.cache_dir={cache_dir}",
        "training.max_steps=3",
        "training.global_batch_size=8",
        "training.per_device_batch_size=4",
        "training.group_by_length=false",  # length groups are formed per process, so batches would differ
    ]
    result = subprocess.run(
        [*command, "train", str(RECIPE), *overrides], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_two_process_ddp_matches_single_process(tmp_path):
    cache = tmp_path / "cache"
    run([sys.executable, "-m", "trex"], tmp_path / "single", cache)  # 1 process x 4 x accumulation 2
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "trex",
    ]
    run(torchrun, tmp_path / "ddp", cache)  # 2 processes x 4 x accumulation 1
    single = load_tensors(tmp_path / "single" / "adapter" / ADAPTER_WEIGHTS_NAME)
    ddp = load_tensors(tmp_path / "ddp" / "adapter" / ADAPTER_WEIGHTS_NAME)
    assert single.keys() == ddp.keys()
    moved = 0
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-6, msg=key)
        moved += int(key.endswith("trex_B") and value.abs().sum() > 0)
    assert moved, "training must have moved B, or the comparison proves nothing"
