"""The ``trex`` command line: each command is a typed function, so options and their help cannot drift apart."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trex.config import TRexConfig
from trex.eval.cli import eval_command
from trex.intuition.cli import app as intuition_app

app = typer.Typer(help="T-REX: mixture of rank-one experts with semantic intuition.", no_args_is_help=True)
app.add_typer(intuition_app, name="intuition")
app.command("eval")(eval_command)
console = Console()


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def params(
    model_config: Annotated[Path, typer.Argument(help="A transformers config.json (or a model folder holding one).")],
    r_a: Annotated[int, typer.Option(help="Rows of A.")] = 4,
    r_b: Annotated[int, typer.Option(help="Columns of B.")] = 8,
    mode: Annotated[str, typer.Option(help="'grid' or 'diagonal'.")] = "grid",
    lora_rank: Annotated[list[int], typer.Option(help="LoRA ranks to compare with (repeatable).")] = [32],  # noqa: B006
) -> None:
    """Added trainable parameters of T-REX and LoRA, and their share of the base model (no weights needed)."""
    from trex.params import count_added_parameters, load_model_config

    try:
        config = load_model_config(model_config)
        counts = count_added_parameters(config, TRexConfig(r_a=r_a, r_b=r_b, mode=mode), tuple(lora_rank))
    except (FileNotFoundError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err
    table = Table(title=f"Added parameters for {model_config} ({counts[0].base:,d} base parameters)")
    for column in ("method", "added trainable", "share of base"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in counts:
        table.add_row(row.method, f"{row.trainable:,d}", f"{100 * row.share:.3f} %")
    console.print(table)


@app.command(context_settings={"allow_extra_args": False})
def train(
    recipe: Annotated[Path, typer.Argument(help="A YAML recipe (see configs/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="section.key=value overrides, e.g. training.max_steps=10.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest complete checkpoint.")] = False,
) -> None:
    """Train a T-REX adapter on a multitask mixture: fit the intuition bank, train, save the adapter."""
    from trex.data import DataError
    from trex.train.recipe import load_recipe
    from trex.train.run import run_training

    try:
        parsed = load_recipe(recipe, overrides)
        result = run_training(parsed, resume=resume)
    except (FileNotFoundError, ValueError, DataError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    if os.environ.get("RANK", "0") == "0":
        console.print(
            f"trained {result.steps} steps (mean loss {result.train_loss:.4f}); adapter: {result.adapter_dir}"
        )


@app.command()
def quickstart(
    output_dir: Annotated[Path, typer.Option(help="Run folder (re-running continues or reuses it).")] = Path(
        "runs/quickstart"
    ),
    eval_limit: Annotated[int, typer.Option(help="Evaluation instances per task (shipped subset: up to 100).")] = 25,
) -> None:
    """Train T-REX on SmolLM2-135M with the shipped data subset (CPU, offline), then evaluate it against the base."""
    from trex.quickstart import quickstart as run_quickstart

    run_quickstart(output_dir, eval_limit)


def main() -> None:
    app()
