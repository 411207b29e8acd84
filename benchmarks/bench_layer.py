"""One adapted linear layer: forward+backward time and saved activations per token, every method side by side.

    python benchmarks/bench_layer.py                          # d = 576, 2048, 4096; fp32; 2 threads
    python benchmarks/bench_layer.py --dims 576 --compile     # also torch.compile (inductor) on T-REX and LoRA

Methods: T-REX 4x8 / 8x8 / 2x16 (paper preset, with intuition; the fused path, 4x8 also with the factorised router
and op by op as the reference), MoR1E (20 diagonal experts), peft's LoRA layer r=16/32, MoLoRA 8x4, SiRA 8x4, and
the frozen layer alone. Time: ``y = layer(x); y.backward(dy)`` with ``x.requires_grad`` (as inside a network),
round-robin over the methods for --repeats rounds; the median is the number to read. Saved activations: every
tensor autograd keeps for backward, seen through ``torch.autograd.graph.saved_tensors_hooks``, unique storages,
parameters excluded, at two token counts; bytes/token is the difference over the difference in tokens
(deterministic, not timed).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from _common import interleaved, load_average, saved_storage_bytes, summary, write_result
from peft import LoraConfig
from peft.tuners.lora import Linear as PeftLoraLinear
from torch import nn

from trex import TRexConfig, TRexLinear
from trex.config import MoR1EConfig
from trex.methods.molora import MixtureLoRALinear, MoLoRAConfig, SiRAConfig
from trex.routing import RoutingContext

TOKENS = {576: 512, 2048: 512, 4096: 256}
"""Tokens per call by width: 512 as one train step of bench_train_step (4 x 128); 256 at 4096 to stay fast."""


def make_layers(d: int, dtype: torch.dtype, device: str = "cpu") -> dict[str, nn.Module]:
    def base() -> nn.Linear:
        torch.manual_seed(0)
        layer = nn.Linear(d, d, bias=False, dtype=dtype)
        layer.weight.requires_grad_(False)
        return layer

    def trex(config: TRexConfig, fused: bool = True) -> TRexLinear:
        layer = TRexLinear(base(), config, RoutingContext())
        layer.fused = fused
        with torch.no_grad():  # non-zero B and router so nothing is a special case
            layer.trex_B.normal_(std=0.02)
            layer.trex_router.weight.normal_(std=0.02)
        return layer

    def lora(r: int) -> nn.Module:
        layer = PeftLoraLinear(base(), "default", LoraConfig(r=r, lora_alpha=16), r=r, lora_alpha=16)
        with torch.no_grad():
            layer.lora_B["default"].weight.normal_(std=0.02)
        return layer

    def mixture(config: MoLoRAConfig) -> MixtureLoRALinear:
        layer = MixtureLoRALinear(base(), config, RoutingContext())
        with torch.no_grad():
            layer.molora_B.normal_(std=0.02)
        return layer

    layers = {
        "frozen": base(),
        "T-REX 4x8": trex(TRexConfig(r_a=4, r_b=8)),
        "T-REX 4x8 (op by op)": trex(TRexConfig(r_a=4, r_b=8), fused=False),
        "T-REX 4x8 factorised": trex(TRexConfig(r_a=4, r_b=8, factorised_router=True)),
        "T-REX 8x8": trex(TRexConfig(r_a=8, r_b=8)),
        "T-REX 2x16": trex(TRexConfig(r_a=2, r_b=16)),
        "MoR1E": trex(MoR1EConfig()),
        "LoRA r=16": lora(16),
        "LoRA r=32": lora(32),
        "MoLoRA 8x4": mixture(MoLoRAConfig(n_experts=8, r=4)),
        "SiRA 8x4": mixture(SiRAConfig(n_experts=8, r=4)),
    }
    return {name: layer.to(device) for name, layer in layers.items()}


def runner(
    layer: nn.Module, tokens: int, d: int, dtype: torch.dtype, batch: int = 4, device: str = "cpu"
) -> Callable[[], None]:
    """A closure running forward + backward of ``layer`` on ``batch`` x ``tokens/batch`` tokens."""
    x = torch.randn(batch, tokens // batch, d, dtype=dtype, device=device, requires_grad=True)
    dy = torch.randn(batch, tokens // batch, d, dtype=dtype, device=device)
    routing = getattr(layer, "routing", None)
    width = getattr(layer, "prior_width", None)
    intuition = torch.rand(batch, width, dtype=dtype, device=device) if width else None

    def run() -> None:
        if routing is not None:
            with routing.use(intuition):
                y = layer(x)
        else:
            y = layer(x)
        y.backward(dy)
        x.grad = None
        for p in layer.parameters():
            p.grad = None

    return run


def saved_bytes(layer: nn.Module, tokens: int, d: int, dtype: torch.dtype, device: str = "cpu") -> int:
    """Bytes of the unique non-parameter storages autograd keeps for the backward of one call."""
    return saved_storage_bytes(layer, runner(layer, tokens, d, dtype, device=device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[576, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu", help="e.g. cuda (the GPU runs of issue 12: --dtype bfloat16)")
    parser.add_argument("--methods", nargs="+", default=None, help="only these rows (names as printed)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile'd T-REX 4x8 (cells and factorised router) and LoRA r=32; compiled, TRexLinear "
        "runs op by op whatever its `fused` flag",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    load_before = load_average()
    rows = []
    for d in args.dims:
        tokens = TOKENS.get(d, 1024)
        layers = make_layers(d, dtype, args.device)
        if args.methods:
            layers = {k: v for k, v in layers.items() if k in {*args.methods, "frozen", "LoRA r=32"}}
        modules = dict(layers)
        if args.compile:
            for name in ("T-REX 4x8", "T-REX 4x8 factorised", "LoRA r=32"):
                if name in layers:
                    modules[f"{name} (compiled)"] = torch.compile(layers[name])
        fns = {name: runner(module, tokens, d, dtype, device=args.device) for name, module in modules.items()}
        times = interleaved(fns, args.repeats, warmup=2, device=args.device)
        frozen = statistics.median(times["frozen"])
        lora32 = statistics.median(times["LoRA r=32"])
        for name, seconds in times.items():
            layer = layers[name.removesuffix(" (compiled)")]
            module = modules[name]  # compiled: what the compiled graph saves (saved_tensors_hooks see it too)
            saved = [saved_bytes(module, n, d, dtype, args.device) for n in (tokens, 2 * tokens)]
            per_token = (saved[1] - saved[0]) / tokens
            median = statistics.median(seconds)
            row = {
                "d": d, "tokens": tokens, "method": name, **summary(seconds),
                "tokens_per_s": tokens / median, "overhead_vs_frozen": median / frozen - 1,
                "ratio_to_lora32": median / lora32, "saved_bytes_per_token": per_token,
                "saved_values_per_token": per_token / torch.finfo(dtype).bits * 8,
                "trainable_params": sum(p.numel() for p in layer.parameters() if p.requires_grad),
            }  # fmt: skip
            rows.append(row)
            print(
                f"d={d:5d} {name:26s} {median * 1e3:8.2f} ms  x{row['ratio_to_lora32']:.3f} LoRA32  "
                f"saved {per_token:8.0f} B/token  params {row['trainable_params']:,d}"
            )
    write_result(
        "layer",
        {
            "config": {**vars(args), "tokens_by_d": {d: TOKENS.get(d, 1024) for d in args.dims}},
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "rows": rows,
        },
        out=args.out,
        device=args.device,
    )


if __name__ == "__main__":
    main()
