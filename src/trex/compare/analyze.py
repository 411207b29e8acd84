"""``trex analyze RUN_DIR``: PNG figures of one trained run (any method), from its files and a small CPU probe.

- ``loss.png``: the training loss of ``metrics.jsonl`` (every method).
- ``gates.png``: per layer over training, the paper preset's intuition gate (``token_share``: the share of G from
  the token router), its output gate and the router entropy, all logged on the fixed probe batch of training.
- ``routing.png``: the mean routing matrix G (r_a x r_b) per task of one middle-layer T-REX module, from a few
  evaluation instances per task run through the trained adapter (``TRexLinear.routing_weights``, every gate in).
- ``convergence.png``: v2 Fig. 2: how much the routing of a fixed probe batch changes between consecutive
  probes (relative L1 change of G, or of the router distribution for non-T-REX routers, mean over layers): from
  the ``routing_change_mean`` training logs at each routing probe, or, for runs logged before that existed, between
  consecutive kept checkpoints on the evaluation probe.

``trex compare --report --figures`` also draws ``convergence.png`` over every routed method of a comparison (its
first finished seed each), the form of v2 Fig. 2 (T-REX with and without intuition side by side).

A method without a router (LoRA) gets the loss figure only. What could not be drawn, and why, goes to
``NOTES.md`` beside the figures, so the report can say it rather than leave a figure out silently.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss(rows: list[dict], path: Path, title: str) -> bool:
    points = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    if not points:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*points, strict=True), marker=".")
    ax.set(xlabel="optimizer step", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _layer_of(module: str) -> int:
    match = LAYER_INDEX.search(module)
    return int(match.group(1)) if match else -1


def plot_gates(rows: list[dict], path: Path, title: str) -> bool:
    """Per transformer layer (mean over its adapted modules), each logged routing quantity over training."""
    keys = ("token_share", "output_gate", "entropy")
    series: dict[str, dict[int, list[tuple[int, float]]]] = {k: defaultdict(list) for k in keys}
    for row in rows:
        by_layer: dict[tuple[str, int], list[float]] = defaultdict(list)
        for module, stats in row.get("routing", {}).items():
            for key in keys:
                if key in stats:
                    by_layer[(key, _layer_of(module))].append(stats[key])
        for (key, layer), values in by_layer.items():
            series[key][layer].append((row["step"], float(np.mean(values))))
    present = [k for k in keys if series[k]]
    if not present:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.5), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, key in zip(axes[0], present, strict=True):
        layers = sorted(series[key])
        for layer in layers:
            color = cmap(layers.index(layer) / max(len(layers) - 1, 1))
            ax.plot(*zip(*series[key][layer], strict=True), color=color, label=f"layer {layer}")
        ax.set(xlabel="optimizer step", title=key.replace("_", " "))
        ax.grid(alpha=0.3)
    if len(layers) <= 8:
        axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{title} (colour: layer depth, dark = first)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


class Probe:
    """The trained adapter on its base model and a few evaluation prompts per task, tokenized once."""

    def __init__(self, run_dir: Path, per_task: int, tasks: list[str] | None = None) -> None:
        from trex.data import DataError, load_task
        from trex.eval.requests import build_requests
        from trex.eval.runner import resolve_tasks
        from trex.methods import load_adapter_model
        from trex.pretrained import load_base_model

        recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
        base, self.tokenizer = load_base_model(recipe["model"]["name_or_path"])
        self.model = load_adapter_model(base, run_dir / "adapter")
        data = recipe["data"]
        self.items: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
        context = int(getattr(base.config, "max_position_embeddings", 2048) or 2048)
        for task in resolve_tasks(tasks or data["tasks"]):
            try:
                instances = load_task(task, "eval", data_root=data.get("data_root"), limit=per_task)
            except DataError:
                continue  # a training-only task (no evaluation split)
            built = build_requests(task, instances, data["format"], self.tokenizer, data["chat_template"], context)
            for request in built.requests:
                ids = torch.tensor([self.tokenizer(request.prompt)["input_ids"]])
                prior = self.model.instance_inputs([request.intuition_text], [task])
                self.items.append((task, ids, prior))

    def layers(self) -> dict[str, torch.nn.Module]:
        getter = getattr(self.model, "adapter_layers", None)
        return getter() if getter is not None else {}

    @torch.no_grad()
    def routing(self, modules: dict[str, torch.nn.Module]) -> list[dict[str, torch.Tensor]]:
        """Per probe item, per module: the mean over tokens of G (T-REX) or of the router distribution."""
        captured: dict[str, torch.Tensor] = {}

        def hook(name: str):
            def record(module, args, output) -> None:
                intuition = self.model.routing.intuition
                if hasattr(module, "routing_weights"):
                    value = module.routing_weights(args[0], intuition)
                else:
                    value = module.router_probabilities(args[0], intuition)
                captured[name] = value[0].mean(0).float()

            return record

        handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
        results = []
        try:
            for _, ids, prior in self.items:
                captured.clear()
                self.model(input_ids=ids, attention_mask=torch.ones_like(ids), intuition=prior)
                results.append(dict(captured))
        finally:
            for handle in handles:
                handle.remove()
        return results


def middle_module(layers: dict[str, torch.nn.Module]) -> str:
    """The first routed module of the middle transformer block."""
    depths = sorted({_layer_of(name) for name in layers})
    middle = depths[len(depths) // 2]
    return next(name for name in layers if _layer_of(name) == middle)


def plot_routing_matrix(probe: Probe, module: str, path: Path, title: str) -> None:
    per_item = probe.routing({module: probe.layers()[module]})
    by_task: dict[str, list[torch.Tensor]] = defaultdict(list)
    for (task, _, _), values in zip(probe.items, per_item, strict=True):
        by_task[task].append(values[module])
    means = {task: torch.stack(values).mean(0).numpy() for task, values in by_task.items()}
    plt = _pyplot()
    cols = min(len(means), 5)
    rows = -(-len(means) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.5 * rows + 0.8), squeeze=False, layout="constrained")
    top = max(float(np.abs(m).max()) for m in means.values()) or 1.0
    for index, (ax, (task, matrix)) in enumerate(zip(axes.flat, means.items(), strict=False)):
        image = ax.imshow(matrix, cmap="magma", vmin=min(0.0, float(min(m.min() for m in means.values()))), vmax=top)
        ax.set_title(f"{task} (n={len(by_task[task])})", fontsize=8)
        if index + cols >= len(means):  # nothing drawn below: the x axis is labelled here
            ax.set_xlabel("B column (r_b)", fontsize=7)
        if index % cols == 0:
            ax.set_ylabel("A row (r_a)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(means) :]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(f"{title}: mean G of {module}", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's complete checkpoints (``checkpoint-N/COMPLETE``), by step."""
    return sorted(
        (int(m.group(1)), p)
        for p in run_dir.iterdir()
        if (m := CHECKPOINT.match(p.name)) and (p / "COMPLETE").is_file()
    )


def logged_convergence(rows: list[dict]) -> list[tuple[int, float]]:
    """(step, mean relative change of the probe routing since the previous probe) from ``metrics.jsonl``."""
    return [(r["step"], r["routing_change_mean"]) for r in rows if "routing_change_mean" in r]


def _plot_changes(series: dict[str, list[tuple[int, float]]], path: Path, title: str, xlabel: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, points in series.items():
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set(xlabel=xlabel, ylabel="relative L1 change of routing", title=title)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_convergence(probe: Probe, run_dir: Path, path: Path, title: str) -> str | None:
    """Relative L1 change of the probe's routing between consecutive probes: from the training log, else between
    consecutive checkpoints; a note if it cannot be drawn."""
    from trex.config import ADAPTER_WEIGHTS_NAME
    from trex.io import load_tensors

    logged = logged_convergence(read_metrics(run_dir))
    if logged:
        _plot_changes({"training probe": logged}, path, title, "optimizer step (change since the previous probe)")
        return None
    found = checkpoints(run_dir)
    if len(found) < 2:
        kept = ", ".join(p.name for _, p in found) or "none"
        return (
            "Router convergence (v2 Fig. 2): this run logged no routing change (it was trained before trex logged "
            f"one) and kept {kept} (training's save_total_limit deletes older checkpoints), so it cannot be drawn."
        )
    modules = probe.layers()
    states = []
    for step, folder in found:
        probe.model.load_adapter_weights(load_tensors(folder / ADAPTER_WEIGHTS_NAME), source=str(folder))
        states.append((step, probe.routing(modules)))
    changes = []
    for (_, before), (step, after) in zip(states, states[1:], strict=False):
        ratios = [
            float((a[name] - b[name]).abs().sum() / b[name].abs().sum().clamp_min(1e-12))
            for b, a in zip(before, after, strict=True)
            for name in a
        ]
        changes.append((step, float(np.mean(ratios))))
    _plot_changes({"checkpoints": changes}, path, title, "checkpoint step")
    return None


def analyze(run_dir: Path, output_dir: Path | None = None, per_task: int = 4, tasks: list[str] | None = None) -> Path:
    """Write every figure the run allows into ``output_dir`` (default ``RUN_DIR/figures``) with ``NOTES.md``."""
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a trained run folder (no recipe.yaml)")
    output_dir = Path(output_dir) if output_dir is not None else run_dir / "figures"
    output_dir.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
    title = f"{recipe['adapter'].get('method', 'trex')}: {run_dir}"
    notes = [f"Drawn from `{run_dir.as_posix()}`."]
    rows = read_metrics(run_dir)
    if not plot_loss(rows, output_dir / "loss.png", title):
        notes.append("No loss curve: metrics.jsonl has no loss records.")
    routed = any(row.get("routing") for row in rows)
    if not routed:
        notes.append("No routing figures: this method has no router (or its run logged no routing statistics).")
    else:
        plot_gates(rows, output_dir / "gates.png", title)
        if not (run_dir / "adapter").is_dir():
            notes.append("No routing matrix or convergence: the run has no adapter/ folder (unfinished).")
        else:
            probe = Probe(run_dir, per_task, tasks)
            grids = {n: m for n, m in probe.layers().items() if hasattr(m, "routing_weights")}
            if grids:
                plot_routing_matrix(probe, middle_module(grids), output_dir / "routing.png", title)
            else:
                notes.append("No routing matrix: this method's layers have no r_a x r_b grid (not T-REX).")
            note = plot_convergence(probe, run_dir, output_dir / "convergence.png", title)
            if note:
                notes.append(note)
    (output_dir / "NOTES.md").write_text("".join(f"- {n}\n" for n in notes), encoding="utf-8")
    return output_dir


def analyze_comparison(config, figures_dir: Path, per_task: int = 4) -> list[Path]:
    """Figures of every method into ``figures_dir/<method>/`` (for the report), from its first finished seed whose
    weights are on disk, else its first finished seed (loss and gates only).

    A method whose folder was drawn from weights in an earlier sitting keeps it when no seed has weights now: a new
    checkout has only the small files of a comparison, and redrawing would lose the routing figures."""
    from trex.compare.driver import DONE, Step
    from trex.config import ADAPTER_WEIGHTS_NAME

    written = []
    for method, entry in config.methods.items():
        finished = [Step(method, s, "train").folder(config) for s in entry.seeds]
        finished = [folder for folder in finished if (folder / DONE).is_file()]
        weighted = [folder for folder in finished if (folder / "adapter" / ADAPTER_WEIGHTS_NAME).is_file()]
        if weighted:
            written.append(analyze(weighted[0], figures_dir / method, per_task))
        elif finished and not (figures_dir / method).is_dir():
            written.append(analyze(finished[0], figures_dir / method, per_task))
    plot_comparison_convergence(config, figures_dir / "convergence.png")
    return written


def plot_comparison_convergence(config, path: Path) -> bool:
    """v2 Fig. 2 over a comparison: the logged routing change of each routed method's first seed that has one."""
    from trex.compare.driver import Step

    series = {}
    for method, entry in config.methods.items():
        for seed in entry.seeds:
            points = logged_convergence(read_metrics(Step(method, seed, "train").folder(config)))
            if points:
                series[f"{method} (seed {seed})"] = points
                break
    if not series:
        path.unlink(missing_ok=True)
        return False
    _plot_changes(series, path, "Router convergence on the training probe batch (v2 Fig. 2)", "optimizer step")
    return True
