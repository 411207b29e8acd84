"""Train step (forward, backward, AdamW step) of every registered adapter method, side by side in one process.

    python benchmarks/bench_train_step.py                                   # SmolLM2-135M, 4 x 128 tokens
    python benchmarks/bench_train_step.py --model 1b-shape --layers 2       # TinyLlama-1.1B's shape, random, 2 blocks
    python benchmarks/bench_train_step.py --device cuda --dtype bfloat16 --compile

Every method of ``trex.methods.METHODS`` with its default config (T-REX 4x8 paper preset, MoR1E, peft LoRA r=32,
MoLoRA 8x4, SiRA 8x4) plus T-REX 4x8 run op by op (``TRexLinear.fused = False``, the path before the fused one) and
T-REX 4x8 with the factorised router (``factorised_router=True``: 12 router rows instead of 32), on every nn.Linear
but the head, steps interleaved round-robin after a burn-in so drift in machine load hits all alike; medians and
ratios to LoRA are the numbers to read. Memory: on CUDA the peak allocated per step; on CPU (no allocator
statistics) the bytes autograd saves for backward in one step (saved_tensors_hooks, unique storages, parameters
excluded) and the adapter's parameter + gradient + AdamW state bytes.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
from _common import interleaved, load_average, saved_storage_bytes, summary, sync, write_result
from transformers import AutoModelForCausalLM

from trex.layer import TRexLinear
from trex.methods import METHODS, build_adapter_model
from trex.params import load_model_config
from trex.pretrained import load_base_model

SHAPES = {"1b-shape": Path(__file__).parents[1] / "configs" / "models" / "tinyllama-1.1b.json"}


def base_model(name: str, layers: int | None, dtype: torch.dtype):
    if name in SHAPES:
        config = load_model_config(SHAPES[name])
        if layers is not None:
            config.num_hidden_layers = layers
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(config, dtype=dtype)
    model, _ = load_base_model(name, dtype=dtype)
    if layers is not None:
        model.model.layers = model.model.layers[:layers]
        model.config.num_hidden_layers = layers
    return model


def build(base, method: str, fused: bool = True, **options):
    model = build_adapter_model(copy.deepcopy(base), METHODS[method].config_class(**options))
    for module in model.modules():
        if isinstance(module, TRexLinear):
            module.fused = fused
    with torch.no_grad():  # B starts at zero: give it values so no product is a special case
        for param in model.parameters():
            if param.requires_grad and param.dim() >= 2 and param.abs().sum() == 0:
                param.normal_(std=0.02)
    return model.train()


def make_step(model, batch):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def saved_bytes(model, batch) -> int:
    losses = []
    saved = saved_storage_bytes(model, lambda: losses.append(model(**batch).loss))
    losses[0].backward()
    model.zero_grad(set_to_none=True)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a base model name/path, or 1b-shape")
    parser.add_argument("--layers", type=int, default=None, help="keep only the first N blocks")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (adds '(compiled)' rows)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    load_before = load_average()

    base = base_model(args.model, args.layers, dtype).to(args.device)
    torch.manual_seed(0)
    ids = torch.randint(0, base.config.vocab_size, (args.batch, args.seq), device=args.device)
    models = {m: build(base, m) for m in args.methods}
    if "trex" in models:
        models["trex (op by op)"] = build(base, "trex", fused=False)
        models["trex (factorised router)"] = build(base, "trex", factorised_router=True)
    batches = {}
    for name, model in models.items():
        batch = {"input_ids": ids, "labels": ids}
        if model.needs_instance_inputs:
            batch["intuition"] = torch.rand(args.batch, model.adapter_config.prior_width, device=args.device)
        batches[name] = batch
    steps = {name: make_step(model, batches[name]) for name, model in models.items()}
    if args.compile:
        for name in list(models):
            compiled = torch.compile(models[name])
            steps[f"{name} (compiled)"] = make_step(compiled, batches[name])
    times = interleaved(steps, args.steps, warmup=args.warmup, device=args.device)

    tokens = args.batch * args.seq
    lora = statistics.median(times["lora"]) if "lora" in times else None
    lora_c = statistics.median(times["lora (compiled)"]) if "lora (compiled)" in times else None
    rows = []
    for name, seconds in times.items():
        key = name.removesuffix(" (compiled)")
        model = models[key]
        median = statistics.median(seconds)
        reference = lora_c if name.endswith("(compiled)") else lora
        trainable = [p for p in model.parameters() if p.requires_grad]
        row = {
            "method": name, **summary(seconds), "tokens_per_s": tokens / median,
            "ratio_to_lora": None if reference is None else median / reference,
            "trainable_params": sum(p.numel() for p in trainable),
            "adapter_state_bytes": 4 * sum(p.numel() * p.element_size() for p in trainable),
        }  # fmt: skip
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            steps[name]()
            sync(args.device)
            row["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        elif not name.endswith("(compiled)"):
            row["saved_activation_bytes"] = saved_bytes(model, batches[name])
        rows.append(row)
        ratio = "" if row["ratio_to_lora"] is None else f"x{row['ratio_to_lora']:.3f} LoRA"
        saved = row.get("saved_activation_bytes")  # not counted inside a compiled graph
        saved = "n/a" if saved is None else f"{saved / 2**20:7.1f} MiB"
        print(
            f"{name:24s} median {median * 1e3:8.1f} ms  {row['tokens_per_s']:8.0f} tok/s  {ratio}  "
            f"saved {saved}  trainable {row['trainable_params']:,d}"
        )
    write_result(
        "train_step",
        {
            "config": {**vars(args), "tokens_per_step": tokens, "layers_kept": base.config.num_hidden_layers},
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "rows": rows,
        },
        out=args.out,
        device=args.device,
    )


if __name__ == "__main__":
    main()
