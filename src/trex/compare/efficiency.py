"""Efficiency of each method in a comparison: added parameters, adapter FLOPs per token, step time, peak memory.

Parameters come from ``trex.params.count_added_parameters`` (the adapters built by the training code on a meta
model). FLOPs are written out from the layer shapes (``analytic_flops``) and checked on one real layer with
``torch.utils.flop_counter.FlopCounterMode``, so the formula cannot drift from the code silently. Both count matrix
products only (2 per multiply-add), as the counter does; the routers' softmax and the elementwise mixing of the
experts add O(K) per token, under 1% of the products for every method here. Step time and memory are read from
the run's own ``metrics.jsonl``, never measured again.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import PretrainedConfig

from trex.config import TRexConfig
from trex.methods import build_adapter_model
from trex.methods.config import AdapterConfig
from trex.params import count_added_parameters, load_model_config, meta_model
from trex.pretrained import TINY_MODEL, resolve_model_path, tiny_random_llama


def model_config(name_or_path: str) -> PretrainedConfig:
    """The base model's transformers config (no weights loaded)."""
    if name_or_path == TINY_MODEL:
        return tiny_random_llama()[0].config
    return load_model_config(resolve_model_path(name_or_path))


def analytic_flops(config: AdapterConfig, d_in: int, d_out: int) -> int:
    """Matrix-product FLOPs per token that the adapter adds to one ``d_in -> d_out`` linear layer."""
    method = config.method
    if method == "lora":
        return 2 * config.r * (d_in + d_out)
    if isinstance(config, TRexConfig):  # trex and mor1e: A and the router in one product, then B
        router = config.r_a + config.r_b if config.factorised_router else config.n_experts  # rows of its weight
        router = router if config.use_router else 0
        return 2 * d_in * (config.r_a + router) + 2 * config.r_b * d_out
    if method in ("molora", "sira"):  # E experts of rank r and the router in one product, then B
        experts = config.n_experts * config.r
        return 2 * d_in * (experts + config.n_experts) + 2 * experts * d_out
    raise ValueError(f"no FLOPs formula for method {method!r}")


@dataclass(frozen=True)
class Flops:
    per_token: int  # summed over every adapted layer
    base_per_token: int  # the adapted layers' own (frozen) products, for scale
    layer: str  # the layer counted by FlopCounterMode
    layer_analytic: int
    layer_counted: int


def adapter_flops(config: AdapterConfig, model: PretrainedConfig, tokens: int = 16) -> Flops:
    """Analytic adapter FLOPs per token over all adapted layers, and one layer counted by FlopCounterMode."""
    adapter = build_adapter_model(meta_model(model), config)
    linears = {name: adapter.base_model.get_submodule(name) for name in adapter.adapted_modules}

    def shape(layer) -> tuple[int, int]:
        base = getattr(layer, "base_layer", layer)
        return base.in_features, base.out_features

    total = sum(analytic_flops(config, *shape(layer)) for layer in linears.values())
    base_total = sum(2 * d_in * d_out for d_in, d_out in map(shape, linears.values()))
    name, layer = next(iter(linears.items()))
    d_in, d_out = shape(layer)
    x = torch.zeros(1, tokens, d_in, device="meta")
    width = getattr(config, "prior_width", None)
    routing = getattr(adapter, "routing", None)
    with torch.no_grad():
        base_layer = getattr(layer, "base_layer", None)
        with FlopCounterMode(display=False) as base_counter:
            base_layer(x)
        intuition = torch.zeros(1, width, device="meta") if width is not None else None
        with FlopCounterMode(display=False) as counter:
            if routing is not None:
                with routing.use(intuition):
                    layer(x)
            else:
                layer(x)
    counted = (counter.get_total_flops() - base_counter.get_total_flops()) // tokens
    return Flops(total, base_total, name, analytic_flops(config, d_in, d_out), counted)


def added_parameters(config: AdapterConfig, model: PretrainedConfig) -> tuple[int, int]:
    """(added trainable parameters, base parameters)."""
    count = count_added_parameters(model, [config])[0]
    return count.trainable, count.base


@dataclass(frozen=True)
class TrainingCost:
    step_s: float | None  # median wall seconds per optimizer step between logging points
    peak_rss_mb: float | None
    tokens_per_s: float | None  # median
    cpu_step_s: float | None = None  # median CPU seconds of the process per optimizer step
    load_1m: float | None = None  # median one-minute load average at the logging points


def training_cost(metrics: Path) -> TrainingCost:
    """Step time, peak memory and throughput from a run's metrics.jsonl (None where it has no such record; runs
    logged before the CPU-time and load fields existed have none of those)."""
    if not metrics.is_file():
        return TrainingCost(None, None, None)
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    steps = []
    for before, after in zip(rows, rows[1:], strict=False):
        runtime = after.get("train_runtime", 0) - before.get("train_runtime", 0)
        # train_runtime restarts with each sitting: a drop marks a resume, not a step
        if after["step"] > before["step"] and runtime > 0:
            steps.append(runtime / (after["step"] - before["step"]))
    peak = max((r["peak_rss_mb"] for r in rows if "peak_rss_mb" in r), default=None)
    return TrainingCost(
        _median(steps), peak, _median([r["tokens_per_s"] for r in rows if "tokens_per_s" in r]),
        _median([r["cpu_s_per_step"] for r in rows if "cpu_s_per_step" in r]),
        _median([r["load_1m"] for r in rows if "load_1m" in r]),
    )  # fmt: skip


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
