"""``trex train`` under DeepSpeed ZeRO-2 and ZeRO-3, two CPU processes over gloo, with the shipped accelerate configs.

DeepSpeed runs on CPU through its CPU accelerator (gloo when oneCCL is not installed). The runs use the shipped
``configs/accelerate/deepspeed-zero{2,3}.yaml`` with two processes and no mixed precision. Checked: both stages
save the adapter's keys (no base weight) and the same values as each other (ZeRO-3 partitions the parameters,
ZeRO-2 only the optimizer state: two code paths to one answer); a run cut after a checkpoint (its last checkpoint
and adapter gone, as after a kill) and resumed with ``--resume`` ends with the uninterrupted run's adapter, bit for
bit; the routing probe runs on every rank (under ZeRO-3 a probe on one rank only waits forever for the others).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from trex.config import ADAPTER_WEIGHTS_NAME
from trex.io import load_tensors
from trex.train import checkpoint as ckpt

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed is not installed (pip install -e '.[test]')"
)

REPO = Path(__file__).resolve().parents[2]


def accelerate_config(stage: int, folder: Path) -> Path:
    config = yaml.safe_load((REPO / "configs" / "accelerate" / f"deepspeed-zero{stage}.yaml").read_text())
    config.update(num_processes=2, mixed_precision="no")
    path = folder / f"zero{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train(config: Path, out: Path, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "DS_ACCELERATOR": "cpu"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "trex",
               "train", str(REPO / "configs" / "tiny-cpu.yaml"), f"output_dir={out}", *extra]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_tensors(run / "adapter" / ADAPTER_WEIGHTS_NAME)


def test_deepspeed_zero2_and_zero3_train_save_and_resume(tmp_path: Path) -> None:
    zero2, zero3 = tmp_path / "zero2", tmp_path / "zero3"
    train(accelerate_config(2, tmp_path), zero2)
    train(accelerate_config(3, tmp_path), zero3)
    reference, sharded = adapter(zero2), adapter(zero3)
    assert len(reference) == 70 and all(".trex_" in k for k in reference)  # 14 modules x 5 tensors, no base weight
    assert sharded.keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(sharded[key], value, rtol=1e-5, atol=1e-6, msg=key)
    probes = [line for line in (zero3 / "metrics.jsonl").read_text().splitlines() if '"routing"' in line]
    assert probes, "the routing probe must have run under ZeRO-3"

    # cut the ZeRO-2 run back to the state a kill between checkpoint-4 and the end leaves behind, then resume it
    shutil.rmtree(zero2 / "adapter")
    shutil.rmtree(zero2 / "checkpoint-6")
    assert [p.name for p in ckpt.complete_checkpoints(zero2)] == ["checkpoint-4"]
    train(accelerate_config(2, tmp_path), zero2, "--resume")
    resumed = adapter(zero2)
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference), "resume must give the same adapter"
