"""The ``trex`` command line: each command is a typed function, so options and their help cannot drift apart."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trex.config import TRexConfig

app = typer.Typer(help="T-REX: mixture of rank-one experts with semantic intuition.", no_args_is_help=True)
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


def main() -> None:
    app()
