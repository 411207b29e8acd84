"""Sharded training on CPU: FSDP2 (``fully_shard``) over two gloo processes against one process.

``accelerate launch`` with the FSDP config cannot be tested on CPU: accelerate 1.15 turns a CPU launch into
``MULTI_CPU`` (plain data parallel) and never builds the FSDP plugin (``accelerate/state.py``: only GPU-like
distributed types switch to FSDP), so such a run would silently test DDP. This test therefore drives the trainer's
FSDP path directly: the adapter model is sharded with ``fully_shard`` (each decoder layer, then the root, as
accelerate's TRANSFORMER_BASED_WRAP does), trained for a few steps, and saved the way ``AdapterTrainer._save``
saves under an engine: from the gathered full state dict, ``save_pretrained(state_dict=...)``. A checkpoint after
step 1 and the final adapter must hold the same keys and values as one process taking the same steps.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from trex.config import ADAPTER_WEIGHTS_NAME
from trex.io import load_tensors
from trex.train import checkpoint as ckpt

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from trex import TRexConfig, get_trex_model
    from trex.config import ADAPTER_WEIGHTS_NAME
    from trex.io import load_tensors
    from trex.pretrained import tiny_random_llama
    from trex.train import checkpoint as ckpt

    torch.set_num_threads(1)
    out, sharded, mode = Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
    if sharded:
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    torch.manual_seed(0)
    model = get_trex_model(tiny_random_llama()[0], TRexConfig(r_a=2, r_b=4))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # B and the router start at zero; non-zero values make every gradient non-trivial
        for name, param in model.named_parameters():
            if "trex_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    model.train()
    if sharded:
        from torch.distributed.fsdp import fully_shard

        for layer in model.base_model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    params = [p for p in model.parameters() if p.requires_grad]
    assert not sharded or all(type(p).__name__ == "DTensor" for p in params), "fully_shard must shard the adapter"
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    batch = torch.randint(0, 250, (4, 12), generator=torch.Generator().manual_seed(2))
    intuition = torch.rand(4, 8, generator=torch.Generator().manual_seed(3))
    rows = slice(rank * 4 // world, (rank + 1) * 4 // world)  # equal halves: the mean of means is the mean

    def save(folder, with_optimizer=False):
        # as AdapterTrainer under FSDP: the gathered full state dict, the optimizer's shards gathered to one file
        if rank == 0 and with_optimizer:
            ckpt.begin_checkpoint(folder)
        if sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            if rank == 0:
                model.save_pretrained(folder, state_dict=full)
            if with_optimizer:
                ckpt.save_sharded_optimizer(model, optimizer, folder, write=rank == 0)
            dist.barrier()
        else:
            model.save_pretrained(folder)
            if with_optimizer:
                ckpt.save_optimizer(optimizer, folder)
        if rank == 0 and with_optimizer:
            ckpt.mark_complete(folder)

    first_step = 1
    if mode == "resume":  # as AdapterTrainer: adapter file into each rank's shards, then the optimizer's state
        (checkpoint,) = ckpt.complete_checkpoints(out)
        model.load_adapter_weights(load_tensors(checkpoint / ADAPTER_WEIGHTS_NAME))
        if (checkpoint / ckpt.OPTIMIZER_TENSORS).is_file():
            ckpt.load_sharded_optimizer(model, optimizer, checkpoint)
        first_step = int(checkpoint.name.split("-")[1]) + 1
    for step in range(first_step, 4):
        if mode == "kill" and step == 2 and rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)  # killed mid-run, after checkpoint-1 was written whole
        loss = model(input_ids=batch[rows], labels=batch[rows], intuition=intuition[rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step == 1:
            save(out / "checkpoint-1", with_optimizer=True)
    save(out / "adapter")
    # the routing probe of trex.train.metrics, on every rank as the trainer runs it: a collective under FSDP
    probe = {"input_ids": batch, "attention_mask": torch.ones_like(batch), "intuition": intuition}
    per_token = {}
    stats = model.routing_statistics(probe, per_token)
    if rank == 0:
        (out / "routing.json").write_text(json.dumps(stats))
        (out / "routing_tokens.json").write_text(json.dumps({k: v.tolist() for k, v in per_token.items()}))
    if sharded:
        dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], out: Path, sharded: bool, mode: str = "full") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [*command, str(out), str(int(sharded)), mode], env=env, capture_output=True, text=True, timeout=600
    )
    assert (result.returncode == 0) == (mode != "kill"), result.stdout[-3000:] + result.stderr[-3000:]
    return result


def torchrun(script: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            f"--master_port={free_port()}", str(script)]  # fmt: skip


def assert_same_adapter(folder: Path, reference: Path) -> None:
    single = load_tensors(reference / ADAPTER_WEIGHTS_NAME)
    sharded = load_tensors(folder / ADAPTER_WEIGHTS_NAME)
    assert sharded.keys() == single.keys() and len(single) == 70, folder  # 14 modules x 5 tensors, no base key
    assert "base_model.model.model.layers.0.self_attn.q_proj.trex_router.intuition_gate" in sharded
    for key, value in single.items():
        torch.testing.assert_close(sharded[key], value, rtol=1e-4, atol=1e-6, msg=f"{folder}: {key}")


def test_fsdp_two_processes_save_the_single_process_adapter(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run([sys.executable, str(script)], tmp_path / "single", sharded=False)
    run(torchrun(script), tmp_path / "fsdp", sharded=True)
    for folder in ("checkpoint-1", "adapter"):
        assert_same_adapter(tmp_path / "fsdp" / folder, tmp_path / "single" / folder)
    first = load_tensors(tmp_path / "fsdp" / "checkpoint-1" / ADAPTER_WEIGHTS_NAME)
    last = load_tensors(tmp_path / "fsdp" / "adapter" / ADAPTER_WEIGHTS_NAME)
    assert any(not torch.equal(first[k], last[k]) for k in first), "training must move the adapter between saves"
    single_routing = json.loads((tmp_path / "single" / "routing.json").read_text())
    sharded_routing = json.loads((tmp_path / "fsdp" / "routing.json").read_text())
    assert sharded_routing.keys() == single_routing.keys() and len(single_routing) == 14
    for name, row in single_routing.items():
        assert sharded_routing[name] == pytest.approx(row, rel=1e-4, abs=1e-6), name
    # the per-token routing the router-convergence log compares between probes, gathered the same way
    single_tokens = json.loads((tmp_path / "single" / "routing_tokens.json").read_text())
    sharded_tokens = json.loads((tmp_path / "fsdp" / "routing_tokens.json").read_text())
    assert sharded_tokens.keys() == single_tokens.keys() and len(single_tokens) == 14
    for name, rows in single_tokens.items():
        torch.testing.assert_close(torch.tensor(sharded_tokens[name]), torch.tensor(rows), rtol=1e-4, atol=1e-6)
    # the gathered optimizer state is the single process's state, under parameter names instead of indices
    single_state = ckpt.read_optimizer_state(tmp_path / "single" / "checkpoint-1")["state"]
    sharded_state = ckpt.read_optimizer_state(tmp_path / "fsdp" / "checkpoint-1")["state"]
    assert len(sharded_state) == len(single_state) == 70 and all(isinstance(k, str) for k in sharded_state)


def test_fsdp_killed_run_resumes_to_the_uninterrupted_adapter(tmp_path: Path) -> None:
    """Killed after checkpoint-1, resumed by fresh processes: the final adapter is the one of an unbroken run.

    Steps 2 and 3 reuse AdamW's moments from the checkpoint; restarting them from zero moves the weights
    differently, which the last assertion shows, so the comparison can fail.
    """
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run([sys.executable, str(script)], tmp_path / "single", sharded=False)
    run(torchrun(script), tmp_path / "fsdp", sharded=True, mode="kill")
    assert not (tmp_path / "fsdp" / "adapter").exists(), "the killed run must not have finished"
    assert ckpt.complete_checkpoints(tmp_path / "fsdp") == [tmp_path / "fsdp" / "checkpoint-1"]
    run(torchrun(script), tmp_path / "fsdp", sharded=True, mode="resume")
    assert_same_adapter(tmp_path / "fsdp" / "adapter", tmp_path / "single" / "adapter")

    fresh = tmp_path / "fresh" / "checkpoint-1"  # the same checkpoint without the optimizer: another adapter
    shutil.copytree(tmp_path / "fsdp" / "checkpoint-1", fresh)
    (fresh / ckpt.OPTIMIZER_TENSORS).unlink()
    run(torchrun(script), fresh.parent, sharded=True, mode="resume")
    with pytest.raises(AssertionError):
        assert_same_adapter(fresh.parent / "adapter", tmp_path / "single" / "adapter")
