"""Training metrics: a JSONL log with loss, learning rate, tokens/s, auxiliary losses and, for routed methods, the
routing statistics of every adapted layer on a fixed probe batch (``AdapterModel.routing_statistics``).

Besides wall-clock speed each line records the process's CPU seconds per optimizer step and the machine's load:
on a shared machine (or a job paused with SIGSTOP) wall time measures the neighbours as much as the method, while
CPU seconds count only the work this process did. Routed methods also log how much the probe batch's routing moved
since the previous probe (``change`` per module, ``routing_change_mean``): the router convergence of v2 Fig. 2,
available even when training keeps a single checkpoint."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from trex.io import write_text_atomic
from trex.methods.base import AdapterModel


class MetricsLogger(TrainerCallback):
    """Appends one JSON line per logging step to ``metrics.jsonl`` (written by the main process only).

    A run that starts again from a checkpoint (or from nothing, when its checkpoints were lost) first drops the
    lines logged after the step it restarts from: they describe training that is about to be redone, and kept
    they would draw the loss curve twice over those steps.
    """

    def __init__(self, path: Path, probe_batch: dict[str, torch.Tensor] | None, probe_every: int = 10) -> None:
        self.path = path
        self.probe_batch = probe_batch
        self.probe_every = probe_every
        self._last: tuple[float, int, float, int] | None = None  # wall time, tokens, CPU time, step
        self._previous_routing: dict[str, torch.Tensor] = {}  # the last probe's routing, per module

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            drop_records_after(self.path, state.global_step)
        self._last = (time.perf_counter(), state.num_input_tokens_seen, time.process_time(), state.global_step)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        # every rank runs the probe: under FSDP and ZeRO-3 its forward gathers sharded weights collectively
        probe_now = state.global_step == 1 or state.global_step % self.probe_every == 0
        stats = self._probe(model) if probe_now else {}
        if not state.is_world_process_zero:
            return
        now, tokens, cpu = time.perf_counter(), state.num_input_tokens_seen, time.process_time()
        step = state.global_step
        record: dict[str, Any] = {"step": step, "epoch": state.epoch, **logs}
        if self._last is not None and now > self._last[0]:
            record["tokens_per_s"] = (tokens - self._last[1]) / (now - self._last[0])
        if self._last is not None and step > self._last[3]:
            record["cpu_s_per_step"] = (cpu - self._last[2]) / (step - self._last[3])
        if hasattr(os, "getloadavg"):  # not on Windows
            record["load_1m"] = os.getloadavg()[0]
        record["peak_rss_mb"] = _peak_rss_mb()
        entropies = [s["entropy"] for s in stats.values() if "entropy" in s]
        if entropies:
            record["routing_entropy_mean"] = sum(entropies) / len(entropies)
        changes = [s["change"] for s in stats.values() if "change" in s]
        if changes:
            record["routing_change_mean"] = sum(changes) / len(changes)
        if stats:
            record["routing"] = stats
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self._last = (time.perf_counter(), tokens, time.process_time(), step)

    def _probe(self, model: torch.nn.Module | None) -> dict[str, dict[str, float]]:
        if self.probe_batch is None or model is None:
            return {}
        adapter_model = _unwrap(model)
        device = next(p for p in adapter_model.parameters() if p.requires_grad).device
        routing: dict[str, torch.Tensor] = {}
        stats = adapter_model.routing_statistics({k: v.to(device) for k, v in self.probe_batch.items()}, routing)
        for name, now in routing.items():
            before = self._previous_routing.get(name)
            if before is not None and name in stats:
                stats[name]["change"] = relative_change(before, now)
        self._previous_routing = routing
        return stats


def drop_records_after(path: Path, step: int) -> None:
    """Keep only ``path``'s records of steps up to ``step`` (rewritten atomically; nothing to do without one)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) < len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def logged_training(metrics: Path) -> tuple[int, float | None]:
    """(last logged step, mean training loss over every logged step) from a run's ``metrics.jsonl``.

    The Trainer's own ``training_loss`` covers only the steps of a resumed run's last sitting; each logged loss is
    the mean over the steps since the previous logging point, so it is weighted by that interval."""
    if not metrics.is_file():
        return 0, None
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [row for row in rows if "loss" in row]
    if not rows:
        return 0, None
    weighted, previous = 0.0, 0
    for row in rows:
        weighted += row["loss"] * (row["step"] - previous)
        previous = row["step"]
    return previous, weighted / previous


def relative_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """``Σ|after − before| / Σ|before|`` over every token and cell: how much the probe batch's routing moved since
    the previous probe (0 = unchanged). After a resume the first probe has no previous one in memory, so no change."""
    return float((after - before).abs().sum() / before.abs().sum().clamp_min(1e-12))


def _unwrap(model: torch.nn.Module) -> AdapterModel:
    while not isinstance(model, AdapterModel) and hasattr(model, "module"):
        model = model.module
    return model


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
