"""Training metrics: a JSONL log with loss, learning rate, tokens/s and the routing entropy of every adapted layer."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from trex.layer import TRexLinear
from trex.model import TRexModel


@torch.no_grad()
def routing_statistics(model: TRexModel, batch: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per adapted module: mean normalised entropy of the token router over real tokens, and the gate values.

    Entropy 1 is uniform routing over all cells, 0 is one cell per token. The paper preset's intuition gate
    ``σ(k·g)`` says how much of G comes from the token router rather than from intuition.
    """
    captured: dict[str, float] = {}
    mask = batch["attention_mask"].bool()
    intuition = batch.get("intuition")
    stats: dict[str, dict[str, float]] = {}

    def hook(name: str):
        def record(module: TRexLinear, args: tuple, output: Any) -> None:
            p = module.router_probabilities(args[0], model.routing.intuition)
            entropy = -(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(p.shape[-1])
            captured[name] = entropy[mask].mean().item()

        return record

    modules = {name: m for name, m in model.base_model.named_modules() if isinstance(m, TRexLinear)}
    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]
    was_training = model.training
    model.eval()
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], intuition=intuition)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    for name, module in modules.items():
        row = {"entropy": captured[name]}
        if module.config.preset == "paper":
            k = module.config.gate_sharpness
            row["token_share"] = torch.sigmoid(k * module.trex_intuition_gate).item()
            row["output_gate"] = torch.sigmoid(k * module.trex_output_gate).item()
        stats[name] = row
    return stats


class MetricsLogger(TrainerCallback):
    """Appends one JSON line per logging step to ``metrics.jsonl`` (main process only)."""

    def __init__(self, path: Path, probe_batch: dict[str, torch.Tensor] | None, probe_every: int = 10) -> None:
        self.path = path
        self.probe_batch = probe_batch
        self.probe_every = probe_every
        self._last: tuple[float, int] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        record: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch, **logs}
        if self._last is not None and now > self._last[0]:
            record["tokens_per_s"] = (tokens - self._last[1]) / (now - self._last[0])
        record["peak_rss_mb"] = _peak_rss_mb()
        probe_now = state.global_step == 1 or state.global_step % self.probe_every == 0
        if self.probe_batch is not None and model is not None and probe_now:
            trex_model = _unwrap(model)
            device = next(p for p in trex_model.parameters() if p.requires_grad).device
            batch = {k: v.to(device) for k, v in self.probe_batch.items()}
            stats = routing_statistics(trex_model, batch)
            record["routing_entropy_mean"] = sum(s["entropy"] for s in stats.values()) / len(stats)
            record["routing"] = stats
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self._last = (time.perf_counter(), tokens)


def _unwrap(model: torch.nn.Module) -> TRexModel:
    while not isinstance(model, TRexModel) and hasattr(model, "module"):
        model = model.module
    return model


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
