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

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from trex.config import ADAPTER_WEIGHTS_NAME
from trex.io import load_tensors

CHILD = textwrap.dedent(
    """
    import os, sys
    import torch
    import torch.distributed as dist
    from trex import TRexConfig, get_trex_model
    from trex.pretrained import tiny_random_llama

    torch.set_num_threads(1)
    out, sharded = sys.argv[1], sys.argv[2] == "1"
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

    def save(folder):
        if sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            if rank == 0:
                model.save_pretrained(folder, state_dict=full)
            dist.barrier()
        else:
            model.save_pretrained(folder)

    for step in (1, 2, 3):
        loss = model(input_ids=batch[rows], labels=batch[rows], intuition=intuition[rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step == 1:
            save(os.path.join(out, "checkpoint-1"))
    save(os.path.join(out, "adapter"))
    if sharded:
        dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], out: Path, sharded: bool) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [*command, str(out), str(int(sharded))], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_fsdp_two_processes_save_the_single_process_adapter(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run([sys.executable, str(script)], tmp_path / "single", sharded=False)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={free_port()}", str(script)]  # fmt: skip
    run(torchrun, tmp_path / "fsdp", sharded=True)
    for folder in ("checkpoint-1", "adapter"):
        single = load_tensors(tmp_path / "single" / folder / ADAPTER_WEIGHTS_NAME)
        sharded = load_tensors(tmp_path / "fsdp" / folder / ADAPTER_WEIGHTS_NAME)
        assert sharded.keys() == single.keys() and len(single) == 70, folder  # 14 modules x 5 tensors, no base key
        assert "base_model.model.model.layers.0.self_attn.q_proj.trex_router.intuition_gate" in sharded
        for key, value in single.items():
            assert not isinstance(sharded[key], type(None))
            torch.testing.assert_close(sharded[key], value, rtol=1e-4, atol=1e-6, msg=f"{folder}: {key}")
    first = load_tensors(tmp_path / "fsdp" / "checkpoint-1" / ADAPTER_WEIGHTS_NAME)
    last = load_tensors(tmp_path / "fsdp" / "adapter" / ADAPTER_WEIGHTS_NAME)
    assert any(not torch.equal(first[k], last[k]) for k in first), "training must move the adapter between saves"
