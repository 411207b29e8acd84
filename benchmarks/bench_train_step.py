"""Train-step time of T-REX against peft LoRA on the same modules, measured side by side in one process.

    python benchmarks/bench_train_step.py                      # SmolLM2-135M, 4 x 128 tokens, CPU
    python benchmarks/bench_train_step.py --steps 20 --device cuda

Steps of the two adapters are interleaved (A, B, A, B, ...) after a burn-in, so drift in machine load hits both
alike; the ratio is the number to read. One JSON per run goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model

import trex
from trex import TRexConfig, get_trex_model
from trex.model import find_target_modules
from trex.pretrained import load_base_model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_step(model, batch, device):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> float:
        sync(device)
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    base, _ = load_base_model(args.model)
    base.to(args.device).train()
    config = TRexConfig()
    targets = find_target_modules(base, config)
    ids = torch.randint(0, base.config.vocab_size, (args.batch, args.seq), device=args.device)
    intuition = torch.rand(args.batch, config.intuition_width, device=args.device)

    trex_model = get_trex_model(copy.deepcopy(base), config)
    lora_model = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=args.lora_rank, lora_alpha=16, target_modules=targets)
    )
    steps = {
        f"T-REX {config.r_a}x{config.r_b}": make_step(
            trex_model, {"input_ids": ids, "labels": ids, "intuition": intuition}, args.device
        ),
        f"LoRA r={args.lora_rank}": make_step(lora_model, {"input_ids": ids, "labels": ids}, args.device),
    }
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            times[name].append(step())

    (trex_name, trex_times), (lora_name, lora_times) = times.items()
    tokens = args.batch * args.seq
    rows = {
        name: {
            "median_s": statistics.median(t),
            "min_s": min(t),
            "tokens_per_s": tokens / statistics.median(t),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
        for (name, t), model in zip(times.items(), (trex_model, lora_model), strict=True)
    }
    ratio = statistics.median(trex_times) / statistics.median(lora_times)
    print(f"train step, {args.model}, {args.batch} x {args.seq} tokens, {args.device}, {args.threads} threads")
    for name, row in rows.items():
        print(
            f"  {name:<14} median {row['median_s'] * 1000:8.1f} ms  min {row['min_s'] * 1000:8.1f} ms  "
            f"{row['tokens_per_s']:8.0f} tok/s  trainable {row['trainable_params']:,d}"
        )
    print(f"  ratio {trex_name} / {lora_name}: {ratio:.3f}")

    record = {
        "benchmark": "train_step",
        "args": vars(args),
        "results": rows,
        "ratio_trex_over_lora": ratio,
        "versions": {
            "trex": trex.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpus": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = Path(__file__).parent / "results" / f"train_step-{args.device}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
