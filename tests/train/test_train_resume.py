"""A run killed after a checkpoint and resumed ends with the same adapter and the same metrics log as an
uninterrupted run.

Resuming deletes the half-written checkpoint trex left, never a checkpoint folder of another program.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from trex.config import ADAPTER_WEIGHTS_NAME
from trex.io import load_tensors
from trex.train.checkpoint import begin_checkpoint

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "tiny-cpu.yaml"

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from transformers import TrainerCallback
    from trex.train.recipe import load_recipe
    from trex.train.run import run_training

    torch.set_num_threads(1)
    recipe_path, output_dir, cache_dir, kill_after, resume = sys.argv[1:6]

    class KillAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == int(kill_after):
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, like a lost machine

    recipe = load_recipe(recipe_path, [f"output_dir={output_dir}", f"intuition.cache_dir={cache_dir}"])
    run_training(recipe, resume=resume == "1", callbacks=[KillAfterCheckpoint()] if int(kill_after) else [])
    """
)


def train(
    output_dir: Path, cache_dir: Path, kill_after: int = 0, resume: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = [
        sys.executable,
        "-c",
        CHILD,
        str(RECIPE),
        str(output_dir),
        str(cache_dir),
        str(kill_after),
        str(int(resume)),
    ]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted run: the reference every resumed run must match exactly."""
    root = tmp_path_factory.mktemp("straight")
    assert train(root / "run", root / "cache").returncode == 0
    return root / "run"


def test_killed_and_resumed_run_matches_uninterrupted(straight, tmp_path):
    cache = tmp_path / "cache"
    expected = load_tensors(straight / "adapter" / ADAPTER_WEIGHTS_NAME)

    interrupted = tmp_path / "interrupted"
    assert train(interrupted, cache, kill_after=4).returncode == -9
    assert (interrupted / "checkpoint-4" / "COMPLETE").is_file()
    assert not (interrupted / "adapter").exists()
    half_written = interrupted / "checkpoint-6"  # what a kill in the middle of the next save leaves behind
    begin_checkpoint(half_written)
    (half_written / ADAPTER_WEIGHTS_NAME).write_bytes(b"partial")
    foreign = interrupted / "checkpoint-100"  # another program's checkpoint: never trex's to delete
    foreign.mkdir()
    (foreign / "model.bin").write_bytes(b"\x00their weights")

    refused = train(interrupted, cache, resume=True)
    assert refused.returncode != 0 and "may be another program's checkpoint; move it out" in refused.stderr
    assert [p.name for p in foreign.iterdir()] == ["model.bin"]
    assert (foreign / "model.bin").read_bytes() == b"\x00their weights"
    assert (half_written / ADAPTER_WEIGHTS_NAME).read_bytes() == b"partial"  # nothing deleted before refusing
    foreign.rename(tmp_path / "moved-away")
    metrics = interrupted / "metrics.jsonl"
    logged = [json.loads(line) for line in metrics.read_text().splitlines()]
    with metrics.open("a") as handle:  # a kill after logging step 5, before checkpoint-6: step 5 is trained again
        handle.write(json.dumps({**logged[-1], "step": 5, "loss": 99.0}) + "\n")

    assert train(interrupted, cache, resume=True).returncode == 0
    assert (interrupted / "checkpoint-6" / "COMPLETE").is_file()
    resumed = load_tensors(interrupted / "adapter" / ADAPTER_WEIGHTS_NAME)
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    straight_log = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    resumed_log = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in resumed_log] == [r["step"] for r in straight_log]
    assert [r["loss"] for r in resumed_log] == [r["loss"] for r in straight_log]
    changed = [k for k, v in expected.items() if k.endswith("trex_B") and v.abs().sum() > 0]
    assert changed, "training must have moved B away from zero, or the comparison proves nothing"


def test_a_run_killed_after_its_last_checkpoint_takes_no_step_past_max_steps(straight, tmp_path):
    """Killed between the final checkpoint and saving the adapter: resuming saves the checkpoint's weights (the
    Trainer alone would train one step more than max_steps)."""
    run = tmp_path / "run"
    assert train(run, tmp_path / "cache", kill_after=6).returncode == -9
    assert (run / "checkpoint-6" / "COMPLETE").is_file() and not (run / "adapter").exists()
    assert train(run, tmp_path / "cache", resume=True).returncode == 0
    expected = load_tensors(straight / "adapter" / ADAPTER_WEIGHTS_NAME)
    resumed = load_tensors(run / "adapter" / ADAPTER_WEIGHTS_NAME)
    for key, value in expected.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in (straight / "metrics.jsonl").read_text().splitlines()]
