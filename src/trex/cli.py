"""The ``trex`` command line: each command is a typed function, so options and their help cannot drift apart."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trex.config import TRexConfig
from trex.errors import EXIT_USER_ERROR, UserError, check_range, cli_command
from trex.eval.cli import eval_command
from trex.intuition.cli import app as intuition_app
from trex.methods import METHODS

app = typer.Typer(help="T-REX: mixture of rank-one experts with semantic intuition.", no_args_is_help=True)
app.add_typer(intuition_app, name="intuition")
app.command("eval")(cli_command(eval_command))
console = Console()


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
@cli_command
def params(
    model_config: Annotated[Path, typer.Argument(help="A transformers config.json (or a model folder holding one).")],
    method: Annotated[
        list[str] | None, typer.Option(help="Methods to count (repeatable; default: every registered method).")
    ] = None,
    r_a: Annotated[int, typer.Option(help="Rows of A (T-REX).")] = 4,
    r_b: Annotated[int, typer.Option(help="Columns of B (T-REX).")] = 8,
    mode: Annotated[str, typer.Option(help="'grid' or 'diagonal' (T-REX).")] = "grid",
    factorised_router: Annotated[
        bool, typer.Option(help="T-REX with row + column router logits instead of one per cell.")
    ] = False,
    lora_rank: Annotated[list[int], typer.Option(help="Extra LoRA ranks to count (repeatable).")] = [],  # noqa: B006
) -> None:
    """Added trainable parameters of every method, and their share of the model (no weights needed)."""
    from trex.methods import get_method
    from trex.params import count_added_parameters, load_model_config

    for rank in lora_rank:
        check_range("--lora-rank", rank, 1)
    config = load_model_config(model_config)
    configs = []
    for name in method or list(METHODS):
        config_class = get_method(name).config_class
        if config_class is TRexConfig:
            configs.append(TRexConfig(r_a=r_a, r_b=r_b, mode=mode, factorised_router=factorised_router))
        else:
            configs.append(config_class())
    counts = count_added_parameters(config, configs, tuple(lora_rank))
    table = Table(title=f"Added parameters for {model_config} ({counts[0].base:,d} base parameters)")
    for column in ("method", "added trainable", "added / base", "added / (base + added) (papers' #ATP)"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in counts:
        table.add_row(row.method, f"{row.trainable:,d}", f"{100 * row.share:.3f} %", f"{100 * row.paper_share:.3f} %")
    console.print(table)


@app.command(context_settings={"allow_extra_args": False})
@cli_command
def train(
    recipe: Annotated[Path, typer.Argument(help="A YAML recipe (see configs/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="section.key=value overrides, e.g. training.max_steps=10.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest complete checkpoint.")] = False,
) -> None:
    """Train an adapter (adapter.method: trex, mor1e, lora, molora, sira) on a multitask mixture and save it."""
    from trex.train.recipe import load_recipe
    from trex.train.run import run_training

    result = run_training(load_recipe(recipe, overrides), resume=resume)
    if os.environ.get("RANK", "0") == "0":
        loss = "not logged" if result.train_loss is None else f"{result.train_loss:.4f}"
        console.print(f"trained {result.steps} steps (mean loss {loss}); adapter: {result.adapter_dir}")


@app.command()
@cli_command
def compare(
    config: Annotated[Path, typer.Argument(help="A comparison config (see configs/compare/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value overrides, e.g. evaluation.limit=20.")
    ] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Show what is done, running and left; run nothing.")
    ] = False,
    only: Annotated[list[str] | None, typer.Option(help="Run only these methods (repeatable; 'base' too).")] = None,
    report: Annotated[
        bool, typer.Option("--report", help="Write the Markdown report from the run's files; run nothing.")
    ] = False,
    output: Annotated[Path, typer.Option(help="Where --report writes.")] = Path("docs/results.md"),
    figures: Annotated[
        bool, typer.Option("--figures", help="With --report: draw each method's seed figures (trex analyze) first.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            help="Units worked on at once: one process each, the cores split between them (logs of the "
            "extra ones in <output_dir>/workers/)."
        ),
    ] = 1,
    until: Annotated[
        str | None,
        typer.Option(
            help="Start no step expected to end after this time (HH:MM, or an ISO date and time): for sittings "
            "that are cut off at a known time. A training counts its evaluation."
        ),
    ] = None,
) -> None:
    """Train and evaluate every method and seed of a comparison; re-run to continue where the last sitting stopped."""
    from trex.compare import load_compare_config, run_comparison, status_rows
    from trex.compare.driver import parse_deadline

    parsed = load_compare_config(config, overrides)
    if report:
        from trex.compare.report import default_figures_dir, write_report

        if figures:
            from trex.compare.analyze import analyze_comparison

            for folder in analyze_comparison(parsed, default_figures_dir(output)):
                console.print(f"figures: {folder}")
        console.print(f"report: {write_report(parsed, config, output)}")
        return
    if status:
        rows, projected = status_rows(parsed)
        table = Table(title=f"{config} -> {parsed.output_dir}")
        for column in ("step", "state", "wall"):
            table.add_column(column)
        for label, state, wall in rows:
            table.add_row(label, state, "" if wall is None else f"{wall / 60:.1f} min")
        console.print(table)
        left = sum(1 for _, state, _ in rows if state != "done")
        running = sum(1 for _, state, _ in rows if state == "running")
        eta = "unknown until a step of each kind has finished" if projected is None else f"{projected / 3600:.1f} h"
        if projected is not None and running > 1:
            eta += f" of step time, about {projected / running / 3600:.1f} h with the {running} workers running now"
        console.print(f"{len(rows) - left} of {len(rows)} steps done; projected time for the rest: {eta}")
        return
    check_range("--workers", workers, 1)
    try:
        deadline = None if until is None else parse_deadline(until)
    except ValueError as err:
        raise UserError(str(err)) from err
    from trex.compare.workers import start_workers, wait_for

    log_dir = parsed.output_dir / "workers"
    extra = start_workers(config, overrides or [], only, workers, log_dir, until) if workers > 1 else []
    try:
        done = run_comparison(parsed, only, deadline)
    except RuntimeError as err:  # a step failed
        raise UserError(str(err)) from err
    finally:
        if extra and sys.exc_info()[0] is not None:
            console.print(f"the other workers (pids {', '.join(str(c.pid) for c in extra)}) go on; logs in "
                          f"{parsed.output_dir / 'workers'}")  # fmt: skip
    codes = wait_for(extra)
    console.print(f"{len(done)} steps done in this process; `trex compare {config} --status` shows the rest")
    if any(codes):
        raise UserError(f"a worker failed (exit codes {codes}); see {parsed.output_dir / 'workers'}")


@app.command()
@cli_command
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="A trained run folder (recipe.yaml, metrics.jsonl, adapter/).")],
    output: Annotated[Path | None, typer.Option(help="Figure folder (default: RUN_DIR/figures).")] = None,
    per_task: Annotated[int, typer.Option(help="Evaluation instances per task for the routing probe.")] = 4,
) -> None:
    """PNG figures of a run: loss, gates per layer, mean routing matrix per task, router convergence (CPU)."""
    from trex.compare.analyze import analyze as run_analysis

    check_range("--per-task", per_task, 1)
    folder = run_analysis(run_dir, output, per_task)
    console.print(f"figures in {folder}: {', '.join(sorted(p.name for p in folder.glob('*.png')))}")
    notes = (folder / "NOTES.md").read_text(encoding="utf-8").strip()
    if notes:
        console.print(notes)


@app.command()
@cli_command
def quickstart(
    output_dir: Annotated[Path, typer.Option(help="Run folder (re-running continues or reuses it).")] = Path(
        "runs/quickstart"
    ),
    eval_limit: Annotated[int, typer.Option(help="Evaluation instances per task (shipped subset: up to 100).")] = 25,
    method: Annotated[
        str,
        typer.Option(help="Adapter method: trex, mor1e, lora, molora, sira (configs/<method>-smollm2-135m-cpu.yaml)."),
    ] = "trex",
) -> None:
    """Train T-REX (or --method) on SmolLM2-135M with the shipped subset (CPU, offline); evaluate it and the base."""
    from trex.quickstart import check_method
    from trex.quickstart import quickstart as run_quickstart

    check_range("--eval-limit", eval_limit, 1)
    check_method(method)
    run_quickstart(output_dir, eval_limit, method)


configs_app = typer.Typer(
    help="The recipes and configs shipped with trex: list, show, copy (then edit and `trex train` the copy).",
    no_args_is_help=True,
)
app.add_typer(configs_app, name="configs")


@configs_app.command("list")
@cli_command
def configs_list() -> None:
    """Every shipped recipe, comparison, accelerate and model config, with what it is for."""
    from trex.configs import config_path, first_line_comment, list_configs

    for name in list_configs():
        note = first_line_comment(config_path(name))
        typer.echo(f"{name}  {note}" if note else name)


@configs_app.command("show")
@cli_command
def configs_show(
    name: Annotated[str, typer.Argument(help="A name from `trex configs list` (.yaml optional).")],
) -> None:
    """Print a shipped config."""
    from trex.configs import config_path

    typer.echo(config_path(name).read_text(encoding="utf-8"), nl=False)


@configs_app.command("copy")
@cli_command
def configs_copy(
    name: Annotated[str, typer.Argument(help="A name from `trex configs list` (.yaml optional).")],
    destination: Annotated[Path, typer.Argument(help="A file, or an existing folder to copy into.")] = Path("."),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Copy a shipped config, to edit it and run it with `trex train` / `trex compare`."""
    from trex.configs import copy_config

    typer.echo(f"wrote {copy_config(name, destination, overwrite)}")


data_app = typer.Typer(help="Data for the paper's tasks that the offline suite does not hold.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("stage-mmlu-validation")
@cli_command
def data_stage_mmlu_validation(
    data_root: Annotated[
        Path, typer.Option(help="Suite folder to stage into (the one given to `trex eval --data-root`).")
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace a staged file.")] = False,
) -> None:
    """Download cais/mmlu 'validation' (1,531; the authors' MMLU split) into DATA_ROOT/mmlu/validation.jsonl,
    so that `trex eval --task mmlu --split official` runs; needs the Hugging Face hub."""
    from trex.data.stage import stage_mmlu_validation

    typer.echo(f"wrote {stage_mmlu_validation(data_root, overwrite=overwrite)}")


@app.command(
    "lm-eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@cli_command
def lm_eval(ctx: typer.Context) -> None:
    """lm-evaluation-harness's own command line with `--model trex` registered; every argument is passed through,
    e.g. `trex lm-eval --model trex --model_args pretrained=smollm2-135m,adapter=DIR --tasks copa`."""
    try:
        from trex.eval.lm_eval_model import main as lm_eval_main
    except ImportError as err:
        raise UserError(f"trex lm-eval needs lm-eval: pip install 'trex[eval]' ({err})") from err
    try:
        lm_eval_main(list(ctx.args))
    except SystemExit as done:  # lm-eval's argparse exits for --help and bad arguments: keep its code
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_USER_ERROR)
        raise typer.Exit(code) from None


def main() -> None:
    app()
