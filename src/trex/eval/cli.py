"""`trex eval`: one typed command function, registered by `trex.cli` (options and docs cannot drift apart)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from trex.errors import check_range
from trex.eval.errors import EvalError
from trex.pretrained import DEFAULT_MODEL

console = Console()
logger = logging.getLogger(__name__)


def check_eval_options(
    limit: int | None, batch_size: int, max_length: int | None, scoring: str, fmt: str | None, split: str,
    bbh_form: str | None, metric: str,
) -> None:  # fmt: skip
    """The options that need no model or data, checked before anything loads (the rest: `evaluate`)."""
    from trex.data.registry import EVAL_SPLITS
    from trex.data.templates import BBH_FORMS, FORMATS
    from trex.eval.scoring import SCORINGS

    check_range("--limit", limit, 1)
    check_range("--batch-size", batch_size, 1, allow_none=False)
    check_range("--max-length", max_length, 1)
    for option, value, known in (
        ("--scoring", scoring, SCORINGS), ("--format", fmt, FORMATS), ("--split", split, EVAL_SPLITS),
        ("--bbh-form", bbh_form, BBH_FORMS), ("--metric", metric, ("acc", "acc_norm")),
    ):  # fmt: skip
        if value is not None and value not in known:
            raise EvalError(f"{option}: unknown value {value!r}; expected one of {', '.join(known)}")


def eval_command(
    task: Annotated[
        list[str],
        typer.Option(
            "--task", "-t", help="Task names (repeatable or comma-separated), 'suite' (the paper's 14) or 'bbh'."
        ),
    ] = ["suite"],  # noqa: B006
    model: Annotated[str, typer.Option(help="Base model: 'smollm2-135m' (offline default), a folder or a hub id.")] = (
        DEFAULT_MODEL
    ),
    adapter: Annotated[
        Path | None, typer.Option(help="Adapter folder of any method (a peft LoRA one too); omit for the base model.")
    ] = None,
    scoring: Annotated[
        str, typer.Option(help="'generate' (greedy answer letter, the paper's) or 'loglik' (option log-likelihood).")
    ] = "generate",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Prompt format: 'letters', 'official' (the T-REX authors' templates) or 'cloze' (loglik only). "
            "Default: the adapter's training format, else 'letters'.",
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="Evaluation splits: 'full' (trex's, test where there is one) or 'official' (the authors': MMLU and "
            "OpenBookQA on validation; fails for a task whose split is not staged)."
        ),
    ] = "full",
    bbh_form: Annotated[
        str | None,
        typer.Option(
            help="BBH prompts: 'authors' (A/B letters for binary tasks, their 3-shot examples) or 'trex' (inputs "
            "verbatim, binary tasks answered with the word). Default: 'authors' for letters/official, else 'trex'."
        ),
    ] = None,
    map_yes_no: Annotated[
        bool,
        typer.Option(
            "--map-yes-no/--no-map-yes-no",
            help="Generate scoring: read a generated yes/no/true/false as the letter of the option saying it "
            "(the authors' reading); the count is reported per task as 'mapped'.",
        ),
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Score the first N instances of each task.")] = None,
    batch_size: Annotated[int, typer.Option(help="Instances per forward (all options of an instance together).")] = 8,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results.json, predictions, table.md.")] = (
        Path("runs/eval")
    ),
    data_root: Annotated[
        Path | None, typer.Option(help="Suite root (default: $TREX_DATA, else the shipped subset).")
    ] = None,
    chat_template: Annotated[
        bool | None,
        typer.Option(
            "--chat-template/--no-chat-template",
            help="Wrap prompts in the chat template (default: as the adapter was trained, else yes).",
        ),
    ] = None,
    chat_format: Annotated[
        str | None,
        typer.Option(
            help="Named chat format replacing the tokenizer's template, e.g. llama2-authors (default: the adapter's)."
        ),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Context length (default: the model's); passages are cut.")
    ] = None,
    dump_requests: Annotated[
        Path | None, typer.Option(help="Also write every request (prompt, options, gold) to this JSONL file.")
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric of the printed table: 'acc' or 'acc_norm' (loglik).")] = "acc",
    resume: Annotated[
        bool, typer.Option(help="Keep the tasks an interrupted run with the same settings finished in --output.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the results of another evaluation in --output (refused otherwise).")
    ] = False,
) -> None:
    """Accuracy of a base model or base + adapter (any method) on the paper's tasks, in the layout of its Table 1."""
    from trex.eval.loading import load_eval_model
    from trex.eval.runner import evaluate, resolve_tasks

    # Errors become one line in trex.errors.cli_command (registered by trex.cli); options are checked before
    # the model loads.
    check_eval_options(limit, batch_size, max_length, scoring, fmt, split, bbh_form, metric)
    tasks = resolve_tasks(task)
    lm = load_eval_model(model, adapter, chat_template=chat_template, max_length=max_length, chat_format=chat_format)
    run = evaluate(
        lm, tasks, scoring=scoring, fmt=fmt, limit=limit, batch_size=batch_size, data_root=data_root,
        output_dir=output, dump_requests=dump_requests, metric=metric, resume=resume, overwrite=overwrite,
        split=split, bbh_form=bbh_form, map_yes_no=map_yes_no,
    )  # fmt: skip
    console.print(Markdown(run.markdown(metric)))
    console.print(
        f"{sum(r.n for r in run.results.values())} instances in {run.wall_s:.1f} s "
        f"({run.instances_per_s:.2f} instances/s while scoring); results in {output}"
    )
    if run.failed:
        for name, message in run.failed.items():  # one line each, never wrapped (trex.errors)
            typer.echo(typer.style(f"{name} failed:", fg="red") + f" {message}", err=True)
        raise typer.Exit(code=1)
