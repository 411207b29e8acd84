"""``trex compare CONFIG --report``: the comparison's Markdown report, built only from the files of its run.

Every number comes from a finished unit's files (``done.json``, ``predictions.jsonl``, ``metrics.jsonl``,
``results.json``) or from the code that trains (parameter counts, FLOPs); units that are not done are listed as
missing and appear in no table. The paper's numbers are quoted beside ours, labelled with their backbone, so a
reader sees the claim and our measurement together and can judge both.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from trex.compare import efficiency
from trex.compare.config import CompareConfig
from trex.compare.driver import read_json, steps
from trex.compare.results import ComparisonFiles, correctness, method_label, scan
from trex.compare.stats import DRAWS, Estimate, MethodStats, bootstrap
from trex.eval.report import TABLE1_COLUMNS
from trex.train.dataset import training_task_names

REFERENCE = "lora"
"""The method every other is compared with: LoRA-32, the papers' main baseline."""

PAPER_BACKBONES = ("TinyLlama 1B", "LLaMA-2 7B", "Mistral 7B")
"""The paper's backbones quoted here: the smallest (closest to ours) and the two it discusses most."""

PAPER_AVG: dict[str, tuple[float | None, ...]] = {
    "lora": (69.01, 79.90, 83.08),
    "molora": (68.42, 79.71, 83.28),
    "sira": (66.47, 80.29, 82.80),
    "trex": (69.93, 81.19, 84.86),
    "intuition-lora": (69.92, 81.02, 83.66),
    "rank1": (69.70, 80.60, 83.32),
    "intuition-rank1": (70.36, 81.11, 83.84),
    "task-category": (None, 77.40, None),
}
"""AVG over the 14 tasks (%), per paper row kind, in PAPER_BACKBONES order: v2 Table 1 (LoRA-32, MoLoRA, SiRA,
T-REX), v2 Table 5 (the ablation rows) and v1 Table 1 (task category as router reference; LLaMA-2 only). Sources
and caveats: docs/_research_methods.md §2, §6, §7."""

ABLATION_ROWS = (
    ("✗", "✗", "lora", "the paper's ✗✗ numbers equal its LoRA-32 row"),
    ("✓", "✗", "intuition-lora", "intuition as a router prior on LoRA experts (molora with use_intuition)"),
    ("✗", "✓", "rank1", "rank-one experts without intuition"),
    ("✓", "✓", "intuition-rank1", "v1 MoR1E: intuition + diagonal rank-one experts"),
    ("+ MaM", "", "trex", "full T-REX: the 4x8 mix-and-match grid"),
)
"""v2 Table 5's rows: (intuition, rank-1, paper row kind, what it is)."""


def paper_row(adapter) -> str | None:
    """Which row of the paper a method's adapter config corresponds to (None: no row, e.g. the factorised router)."""
    method = adapter.method
    intuition = getattr(adapter, "use_intuition", False)
    if getattr(adapter, "factorised_router", False):
        return None
    if method == "lora":
        return "lora"
    if method in ("molora", "sira"):
        return "intuition-lora" if intuition else method
    if not intuition:
        return "rank1"
    if getattr(adapter, "intuition_source", "bank") == "task_category":
        return "task-category"
    return "intuition-rank1" if method == "mor1e" else "trex"


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _cell(estimate: Estimate | None) -> str:
    return "–" if estimate is None else f"{_pct(estimate.value)} ±{_pct(estimate.half_width)}"


def _interval(estimate: Estimate | None, signed: bool = False) -> str:
    if estimate is None:
        return "–"
    value = f"{100 * estimate.value:+.1f}" if signed else _pct(estimate.value)
    return f"{value} [{100 * estimate.low:+.1f}, {100 * estimate.high:+.1f}]" if signed else (
        f"{value} [{_pct(estimate.low)}, {_pct(estimate.high)}]"
    )  # fmt: skip


def _diff_cell(estimate: Estimate | None) -> str:
    if estimate is None:
        return "–"
    mark = "*" if estimate.excludes_zero else ""
    return f"{100 * estimate.value:+.1f}{mark} ±{_pct(estimate.half_width)}"


def _header(first: list[str], last: list[str]) -> list[str]:
    columns = [*first, *(h for h, _ in TABLE1_COLUMNS), *last]
    aligns = ["---"] * len(first) + ["---:"] * (len(TABLE1_COLUMNS) + len(last))
    return ["| " + " | ".join(columns) + " |", "|" + "|".join(aligns) + "|"]


def accuracy_table(stats: dict[str, MethodStats]) -> list[str]:
    """Table 1 layout: mean over seeds ± half the 95% interval per task; AVG with its interval."""
    lines = _header(["Method", "seeds"], ["AVG [95%]"])
    for method, row in stats.items():
        cells = [_cell(row.tasks.get(task)) for _, task in TABLE1_COLUMNS]
        lines.append(
            f"| {method_label(method)} | {row.seeds} | " + " | ".join(cells) + f" | {_interval(row.average)} |"
        )
    return lines


def difference_table(stats: dict[str, MethodStats], paper_rows: dict[str, str]) -> list[str]:
    """Paired differences to LoRA per task and on average, with the paper's claimed AVG difference beside."""
    paper = " / ".join(PAPER_BACKBONES)
    lines = _header(["Method"], ["AVG diff [95%]", "excludes 0", f"paper: {paper}"])
    for method, row in stats.items():
        if method == REFERENCE or row.diff_average is None:
            continue
        cells = [_diff_cell(row.diff_tasks.get(task)) for _, task in TABLE1_COLUMNS]
        verdict = "yes" if row.diff_average.excludes_zero else "no"
        paper_diff = _paper_diff(paper_rows.get(method))
        average = _interval(row.diff_average, signed=True)
        lines.append(f"| {method_label(method)} | " + " | ".join(cells) + f" | {average} | {verdict} | {paper_diff} |")
    return lines


def _paper_diff(kind: str | None) -> str:
    if kind is None or kind not in PAPER_AVG:
        return "–"
    cells = []
    for value, ref in zip(PAPER_AVG[kind], PAPER_AVG[REFERENCE], strict=True):
        cells.append("–" if value is None else f"{value - ref:+.2f}")
    return " / ".join(cells)


def _verdicts(stats: dict[str, MethodStats]) -> list[str]:
    """Plain sentences: which average differences to LoRA are distinguishable from zero, and which are not."""
    clear = [m for m, s in stats.items() if s.diff_average is not None and s.diff_average.excludes_zero]
    unclear = [m for m, s in stats.items() if s.diff_average is not None and not s.diff_average.excludes_zero]
    lines = []
    if clear:
        described = ", ".join(f"{method_label(m)} ({100 * stats[m].diff_average.value:+.1f} points)" for m in clear)
        lines.append(f"- Distinguishable from LoRA-32 on the average (95% interval excludes zero): {described}.")
    if unclear:
        described = ", ".join(method_label(m) for m in unclear)
        lines.append(
            f"- Not distinguishable from LoRA-32 on the average (interval includes zero): {described}. "
            "Such a difference may be real but smaller than this comparison can resolve."
        )
    return lines


def reading_section(stats: dict[str, MethodStats], paper_rows: dict[str, str], config: CompareConfig) -> list[str]:
    """What the headline comparison says about the paper's claim (T-REX above LoRA-32), and how this comparison's
    scale differs from the paper's: the likely reasons when the claim does not show here (issue 11: the report
    must say so rather than over-read noise). Every number comes from the run's statistics or its config."""
    trex = next((m for m, kind in paper_rows.items() if kind == "trex" and m in stats), None)
    if trex is None or stats[trex].diff_average is None:
        return []
    diff = stats[trex].diff_average
    claims = [v - ref for v, ref in zip(PAPER_AVG["trex"], PAPER_AVG[REFERENCE], strict=True)]
    quoted = " / ".join(f"{c:+.2f}" for c in claims)
    if diff.excludes_zero:
        verdict = (
            "T-REX is ahead of LoRA-32 here, as in the paper."
            if diff.value > 0
            else "T-REX is behind LoRA-32 here, the opposite of the paper's result."
        )
    else:
        verdict = "This comparison does not show T-REX beating LoRA-32: the interval includes zero."
    inside = [c for c in claims if 100 * diff.low <= c <= 100 * diff.high]
    above = [c for c in claims if c > 100 * diff.high]
    if inside:
        verdict += (
            f" The paper's differences {', '.join(f'{c:+.2f}' for c in inside)} lie inside this interval, so they "
            "are neither confirmed nor ruled out at this scale."
        )
    if above:
        verdict += (
            f" The paper's {', '.join(f'{c:+.2f}' for c in above)} lie above it: an effect that large is unlikely "
            "in this setting (outside the 95% interval)."
        )
    recipe = config.base_recipe()
    training, data = recipe.training, recipe.data
    tasks = training_task_names(data)
    seen = training.max_steps * training.global_batch_size
    cap = f"at most {data.max_per_task} instances" if data.max_per_task else "every instance"
    _, base = efficiency.added_parameters(recipe.adapter, efficiency.model_config(recipe.model.name_or_path))
    limit = config.evaluation.limit
    return [
        "### Reading it",
        "",
        f"`{trex}` (the paper's T-REX) minus LoRA-32: {_interval(diff, signed=True)} points on the "
        f"{config.evaluation.metric} average; the paper's T-REX minus LoRA-32: {quoted} "
        f"({' / '.join(PAPER_BACKBONES)}). {verdict}",
        "",
        "How this comparison differs from the paper's, each a likely reason why its differences need not appear "
        "here (none of them is varied in this run):",
        "",
        f"- Model: {base / 1e6:.0f}M parameters (`{recipe.model.name_or_path}`), against the paper's 1B-7B backbones.",
        f"- Training length: {training.max_steps} optimizer steps of {training.global_batch_size} instances "
        f"({seen:,d} instances seen), against 3 epochs of batch 64 over the full mixture (docs/reproduction.md); "
        "the routers start from zero, and the router convergence figure shows how far they got.",
        f"- Data: {cap} of each of the {len(tasks)} training tasks, against their full training sets.",
        f"- Protocol: the {config.evaluation.format} format with {config.evaluation.scoring} scoring, against "
        "letter prompts with generated answers.",
        f"- Evaluation: {f'the first {limit}' if limit else 'all'} instances of each task; the 95% interval of "
        f"the average difference has a half-width of {100 * diff.half_width:.1f} points.",
    ]


def ablation_table(stats: dict[str, MethodStats], paper_rows: dict[str, str]) -> list[str]:
    by_kind: dict[str, list[str]] = {}
    for method, kind in paper_rows.items():
        by_kind.setdefault(kind, []).append(method)
    paper = " / ".join(PAPER_BACKBONES)
    lines = [
        f"| Intu. | R-1 | here | AVG [95%] | diff to LoRA-32 [95%] | paper AVG: {paper} | row |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for intuition, rank1, kind, what in ABLATION_ROWS:
        paper_values = " / ".join("–" if v is None else f"{v:.2f}" for v in PAPER_AVG[kind])
        methods = by_kind.get(kind, [])
        if not methods:
            lines.append(f"| {intuition} | {rank1} | not in this comparison | – | – | {paper_values} | {what} |")
        for method in methods:
            row = stats.get(method)
            average = _interval(row.average) if row else "not evaluated yet"
            diff = _interval(row.diff_average, signed=True) if row and row.diff_average else "–"
            lines.append(f"| {intuition} | {rank1} | {method} | {average} | {diff} | {paper_values} | {what} |")
    return lines


def efficiency_table(files: ComparisonFiles) -> list[str]:
    config = files.config
    lines = [
        "| Method | added params | % of base | adapter MFLOPs/token | % of adapted layers' FLOPs | "
        "FlopCounterMode check (one layer) | s/step (median) | CPU s/step | load | tokens/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    model = efficiency.model_config(config.base_recipe().model.name_or_path)
    for method, entry in config.methods.items():
        adapter = config.unit_recipe(method, entry.seeds[0]).adapter
        added, base = efficiency.added_parameters(adapter, model)
        flops = efficiency.adapter_flops(adapter, model)
        check = "equal" if flops.layer_counted == flops.layer_analytic else (
            f"{flops.layer_counted:,d} counted vs {flops.layer_analytic:,d}"
        )  # fmt: skip
        costs = [efficiency.training_cost(files.train_folder(method, s) / "metrics.jsonl") for s in entry.seeds]
        step = [c.step_s for c in costs if c.step_s is not None]
        cpu = [c.cpu_step_s for c in costs if c.cpu_step_s is not None]
        load = [c.load_1m for c in costs if c.load_1m is not None]
        speed = [c.tokens_per_s for c in costs if c.tokens_per_s is not None]
        peak = [c.peak_rss_mb for c in costs if c.peak_rss_mb is not None]
        lines.append(
            f"| {method} | {added:,d} | {100 * added / base:.2f} | {flops.per_token / 1e6:.2f} | "
            f"{100 * flops.per_token / flops.base_per_token:.1f} | {check} ({flops.layer.rsplit('.', 2)[-2:][-1]}) | "
            f"{_mean(step, '.2f')} | {_mean(cpu, '.2f')} | {_mean(load, '.1f')} | {_mean(speed, '.0f')} | "
            f"{_max(peak)} |"
        )
    return lines


def _mean(values: list[float], fmt: str) -> str:
    return "–" if not values else format(float(np.mean(values)), fmt)


def _max(values: list[float]) -> str:
    return "–" if not values else f"{max(values):.0f}"


def figures_section(figures_dir: Path, output: Path) -> list[str]:
    """Links to the PNGs ``trex analyze`` wrote under ``figures_dir/<method>/``."""
    if not figures_dir.is_dir():
        return [f"No figures yet in `{figures_dir}`: make them with `trex compare CONFIG --report --figures`."]
    lines = []
    convergence = figures_dir / "convergence.png"
    if convergence.is_file():
        lines += [
            "**Router convergence, every routed method** (v2 Fig. 2: relative L1 change of the training probe "
            "batch's routing since the previous probe, mean over layers; T-REX with and without intuition side by "
            "side)\n",
            f"![router convergence]({_relative(convergence, output.parent)})",
            "",
        ]
    for folder in sorted(p for p in figures_dir.iterdir() if p.is_dir()):
        pngs = sorted(folder.glob("*.png"))
        if pngs:
            lines.append(f"**{folder.name}**\n")
            for png in pngs:
                lines.append(f"![{folder.name}: {png.stem}]({_relative(png, output.parent)})")
            notes = folder / "NOTES.md"
            if notes.is_file():
                lines.append("\n" + notes.read_text(encoding="utf-8").strip())
            lines.append("")
    return lines or [f"No figures in `{figures_dir}`."]


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve()).replace(os.sep, "/")


def reproduction_section(files: ComparisonFiles, config_path: Path) -> list[str]:
    config = files.config
    lines = [
        "Commands (each re-run continues where the last sitting stopped):\n",
        "```",
        f"trex compare {config_path}            # train and evaluate what is left",
        f"trex compare {config_path} --workers 2 --until 13:10   # two units at once; start none ending later",
        f"trex compare {config_path} --status   # what is done, running, left",
        f"trex compare {config_path} --report --figures --output docs/results.md",
        "```",
        "",
    ]
    some_eval = next((files.eval_folder(m, s) for m, seeds in files.seeds.items() for s in seeds), None)
    record = files.done(some_eval) if some_eval else None
    results = read_json(some_eval / "results.json") if some_eval else None
    if results:
        versions = ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items())
        hardware = results.get("hardware", {})
        lines.append(f"Versions: {versions}.  ")
        lines.append(
            f"Machine: {hardware.get('platform', '?')}, {hardware.get('cpu_count', '?')} CPUs, "
            f"{hardware.get('torch_threads', '?')} torch threads, device {hardware.get('device', '?')}"
            + (f", host {record.get('host')}." if record else ".")
        )
    else:
        lines.append(f"Versions and machine: no finished evaluation yet (report written on {platform.node()}).")
    lines += [
        "",
        "| Step | wall (min) | CPU (min) | sittings | host | finished |",
        "|---|---:|---:|---:|---|---|",
    ]
    wall_total, cpu_total, cpu_wall, counted, finished = 0.0, 0.0, 0.0, 0, 0
    for step in steps(config):
        record = files.done(step.folder(config))
        if record is None:
            lines.append(f"| {step.label} | not done | | | | |")
            continue
        wall, cpu = float(record.get("wall_s", 0.0)), record.get("cpu_s")
        finished += 1
        wall_total += wall
        if cpu is not None:
            cpu_total, cpu_wall, counted = cpu_total + float(cpu), cpu_wall + wall, counted + 1
        lines.append(
            f"| {step.label} | {wall / 60:.1f} | {'–' if cpu is None else f'{float(cpu) / 60:.1f}'} | "
            f"{record.get('sittings', '?')} | {record.get('host', '?')} | {record.get('finished', '?')} |"
        )
    lines.append(f"\nTotal wall time of the finished steps: {wall_total / 3600:.2f} h.")
    if counted:
        lines.append(
            f"CPU time (the process's own, all threads) of the {counted} of {finished} finished steps that recorded "
            f"it: {cpu_total / 3600:.2f} h, against {cpu_wall / 3600:.2f} h of wall time; steps showing – ran "
            "(at least partly) before the driver recorded CPU time."
        )
    return lines


def build_report(config: CompareConfig, config_path: Path, output: Path, figures_dir: Path | None = None) -> str:
    """The whole report as Markdown (nothing is written here)."""
    files = scan(config)
    figures_dir = figures_dir or default_figures_dir(output)
    paper_rows = {m: paper_row(config.unit_recipe(m, e.seeds[0]).adapter) for m, e in config.methods.items()}
    section = config.evaluation
    out = [
        f"# Comparison results: `{config_path}`",
        "",
        f"Written by `trex compare {config_path} --report` on {time.strftime('%Y-%m-%d %H:%M')} from the files in "
        f"`{config.output_dir}`; no number here is typed in by hand. Evaluation: {section.scoring} scoring, "
        f"{section.format} format, first {section.limit or 'all'} instances of each task; headline metric "
        f"{section.metric}, the other beside it where the scoring has it.",
        "",
    ]
    done = sum(len(s) for s in files.seeds.values())
    out.append(f"Finished evaluations: {done}. Steps not done: {len(files.missing)}.")
    if files.missing:
        out.append("Missing (not in any table): " + ", ".join(f"`{m}`" for m in files.missing) + ".")
    out.append("")
    metrics = (section.metric, "acc" if section.metric == "acc_norm" else "acc_norm")
    all_stats = {}
    for metric in metrics:
        correct = correctness(files, metric)
        if correct:
            all_stats[metric] = bootstrap(correct, REFERENCE if REFERENCE in correct else None)
    first = next(iter((all_stats.get(metrics[0]) or all_stats.get(metrics[1]) or {"": MethodStats(0)}).values()))
    n_tasks = len(first.tasks)
    out += [
        "## 1. Accuracy (v2 Table 1 layout)",
        "",
        f"Mean over seeds (%) ± half the 95% interval; the interval is a bootstrap ({DRAWS} draws) over evaluation "
        "instances and over seeds, the instances resampled identically for every method. AVG is the mean over the "
        f"tasks every finished unit has ({n_tasks} of {len(TABLE1_COLUMNS)}).",
        "",
    ]
    for metric in metrics:
        if metric not in all_stats:
            out += [f"No {metric}: no finished evaluation holds it.", ""]
            continue
        out += [f"**{metric}**", "", *accuracy_table(all_stats[metric]), ""]
    headline = all_stats.get(section.metric)
    if headline and REFERENCE in headline:
        out += [
            f"### Paired differences to LoRA-32 ({section.metric}, points)",
            "",
            "Method minus `lora` on the same instances; ± is half the paired 95% interval, * marks a task whose "
            "interval excludes zero. The paper column is T-REX's (or the matching row's) AVG minus LoRA-32's on "
            "the paper's backbones (v2 Table 1 and 5, v1 Table 1; 7B models fine-tuned on the full mixture, letters "
            "format, generate scoring), a different scale from this comparison.",
            "",
            *difference_table(headline, paper_rows),
            "",
            *_verdicts(headline),
            "",
            "With about 200 instances a task a paired difference on one task has an interval of several points, "
            "and the 14-task average about ±1-2 points: effects of the paper's size (+1-2 points) can be "
            "unresolvable here. 14 per-task intervals at 95% also mean that about one * in 14 can appear by chance.",
            "",
            *reading_section(headline, paper_rows, config),
            "",
        ]
    elif headline:
        out += ["No paired differences: `lora` has no finished evaluation yet.", ""]
    out += [
        "## 2. Ablation (v2 Table 5 layout)",
        "",
        *ablation_table(headline or {}, paper_rows),
        "",
        "Rows map the config's methods by their adapter settings. Differences in construction from the paper's "
        "rows: `trex` without intuition keeps the 4x8 mix-and-match grid (the paper's ✗✓ row has none); `mor1e` "
        "has 20 diagonal experts (v1's ✓✓ row used 32).",
        "",
        "## 3. Efficiency (same run)",
        "",
        "Added trainable parameters from `trex.params.count_added_parameters`; FLOPs per token are the adapters' "
        "matrix products over every adapted layer (analytic, from the layer shapes), checked against "
        "`torch.utils.flop_counter.FlopCounterMode` on one layer; a per-instance prior map adds a few FLOPs per "
        "instance, which the check shows. s/step is the median time between logging points of `metrics.jsonl` "
        "(includes routing probes and checkpoint saves), tokens/s its median, peak RSS the largest logged; means "
        "over the finished seeds. Wall-clock columns count whatever else the machine ran (other jobs, pauses); "
        "CPU s/step is the process's own CPU seconds per step and load the median one-minute load average at the "
        "logging points (runs logged before these two fields existed show –): CPU seconds leave out time the "
        "process waited (pauses, other jobs holding the core) but not a slowdown from a neighbour sharing its "
        "caches and memory bandwidth. The controlled side-by-side timing of a step is in `docs/benchmarks.md`.",
        "",
        *efficiency_table(files),
        "",
        "## 4. Figures",
        "",
        *figures_section(figures_dir, output),
        "",
        "## 5. Reproduction",
        "",
        *reproduction_section(files, config_path),
        "",
    ]
    return "\n".join(out)


def default_figures_dir(output: Path) -> Path:
    """Figures beside the report: ``docs/results.md`` -> ``docs/img/compare/``."""
    return output.parent / "img" / "compare"


def write_report(config: CompareConfig, config_path: Path, output: Path, figures_dir: Path | None = None) -> Path:
    from trex.io import write_text_atomic

    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, build_report(config, config_path, output, figures_dir))
    return output


__all__ = ["build_report", "default_figures_dir", "paper_row", "write_report"]
