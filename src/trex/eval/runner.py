"""`evaluate`: score a model on a list of tasks and write results.json, predictions.jsonl and table.md.

Files are rewritten after every task, so when a later task fails the tasks that finished are on disk; the
failure is recorded in results.json (`failed`) and the remaining tasks still run. A task's predictions are on
disk (flushed) before results.json lists it, so an interruption at any moment never leaves results without
their predictions. With `resume=True` a run that was interrupted (or had failures) picks up where it stopped:
the finished tasks of the output folder are kept, with their predictions, and only the others are scored.
An output folder that holds another evaluation is never replaced silently: `resume` or `overwrite` must say so.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trex.data import DataError, get_task, list_tasks, load_task
from trex.data.registry import EVAL_SPLITS, EvalSplit
from trex.data.templates import BBH_FORMS, FORMATS, LETTER_FORMATS, BbhForm, Format, default_bbh_form
from trex.eval.environment import environment
from trex.eval.errors import EvalError
from trex.eval.generate import CHOICE_TOKENS
from trex.eval.lm import EvalModel
from trex.eval.loading import settled
from trex.eval.partial import PARTIAL_DIR, PartialTask
from trex.eval.progress import progress
from trex.eval.report import detail_table, table1
from trex.eval.requests import build_requests, write_requests
from trex.eval.scoring import SCORINGS, Scoring, TaskResult, score_task
from trex.io import atomic_write, write_text_atomic

logger = logging.getLogger(__name__)

SUITES = {"suite": "eval", "bbh": "bbh"}
"""Task group names accepted wherever task names are: the paper's 14 tasks and the 27 BBH tasks."""
RESULTS_NAME, PREDICTIONS_NAME, TABLE_NAME = "results.json", "predictions.jsonl", "table.md"


def resolve_tasks(names: Sequence[str]) -> list[str]:
    """Expand `suite` / `bbh` and comma-separated lists; unknown names fail here, with the closest suggested."""
    tasks: list[str] = []
    for name in (n.strip() for entry in names for n in entry.split(",")):
        if not name:
            continue
        expanded = list_tasks(SUITES[name]) if name in SUITES else [name]
        for task in expanded:
            try:
                get_task(task)
            except DataError as err:
                raise EvalError(f"{err} (groups: {', '.join(SUITES)})") from None
            if task not in tasks:
                tasks.append(task)
    if not tasks:
        raise EvalError("no tasks given; name tasks or use 'suite' (the paper's 14) or 'bbh'")
    return tasks


@dataclass
class EvalRun:
    """Everything one evaluation produced: settings, per-task results, failures and timing."""

    settings: dict[str, Any]
    results: dict[str, TaskResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def instances_per_s(self) -> float:
        scoring_time = sum(r.wall_s for r in self.results.values())
        return sum(r.n for r in self.results.values()) / scoring_time if scoring_time else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.settings,
            **self.env,
            "wall_s": self.wall_s,
            "instances_per_s": self.instances_per_s,
            "tasks": {task: r.to_dict() for task, r in self.results.items()},
            "failed": self.failed,
        }

    def markdown(self, metric: str = "acc", label: str | None = None) -> str:
        """The paper's Table 1 row for this run, then the per-task detail table."""
        label = label or self.label
        return f"{table1([(label, self.results)], metric)}\n\n{detail_table(self.results)}\n"

    @property
    def label(self) -> str:
        s = self.settings
        model = s["model"] if s["adapter"] is None else f"{s['model']} + {Path(s['adapter']).name}"
        return f"{model} ({s['scoring']}, {s['format']})"


def _write(run: EvalRun, output_dir: Path, metric: str) -> None:
    atomic_write(output_dir / RESULTS_NAME, lambda tmp: tmp.write_text(json.dumps(run.to_dict(), indent=2) + "\n"))
    atomic_write(output_dir / TABLE_NAME, lambda tmp: tmp.write_text(run.markdown(metric)))


RESUME_IGNORED = ("batch_size", "table_metric")
"""Settings that may change between an interrupted run and its resumption: they do not change the scores."""
SETTINGS_BEFORE = {"split": "full", "bbh_form": "trex", "map_yes_no": False}
"""What runs written before these settings existed did (a run may resume one of them)."""


def _resume(output_dir: Path, settings: dict[str, Any], names: Sequence[str]) -> tuple[dict[str, TaskResult], float]:
    """Finished results of an earlier run in `output_dir` for the tasks in `names`, and that run's wall time.

    The earlier run must have had the same settings (model, adapter, scoring, format, limit, data, context):
    mixing results of two setups in one table would be silently wrong. Its predictions are kept for exactly
    the tasks it finished; rows of a task cut off before its result was written are dropped.
    """
    results_file = output_dir / RESULTS_NAME
    if not results_file.is_file():
        return {}, 0.0
    try:
        earlier = json.loads(results_file.read_text(encoding="utf-8"))
        finished = {t: TaskResult.from_dict(r) for t, r in earlier["tasks"].items() if t in names}
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise EvalError(f"{results_file}: cannot resume from it ({type(err).__name__}: {err}); "
                        "use another --output or delete the folder") from None  # fmt: skip
    has_bbh = any(get_task(t).bbh for t in names)
    differing = [
        k for k, v in settings.items()
        if k not in RESUME_IGNORED and earlier.get(k, SETTINGS_BEFORE.get(k)) != v and (k != "bbh_form" or has_bbh)
    ]  # fmt: skip
    if differing:
        detail = ", ".join(f"{k}: {earlier.get(k)!r} there, {settings[k]!r} now" for k in differing)
        raise EvalError(f"{results_file} was written with other settings ({detail}); "
                        "use another --output to keep both, or the same settings to resume")  # fmt: skip
    predictions = output_dir / PREDICTIONS_NAME
    rows = _read_prediction_rows(predictions)
    for task, result in list(finished.items()):
        count = sum(row_task == task for row_task, _ in rows)
        if count != result.n:
            logger.warning("%s: %s lists %d predictions but %s has %d; scoring it again",
                           task, results_file, result.n, predictions, count)  # fmt: skip
            del finished[task]
    kept = "".join(line + "\n" for task, line in rows if task in finished)
    write_text_atomic(predictions, kept)  # appending starts after whole lines only
    return finished, float(earlier.get("wall_s", 0.0))


def _read_prediction_rows(path: Path) -> list[tuple[str, str]]:
    """(task, line) of every whole row of a predictions file; lines cut off (a full disk, a kill) are dropped."""
    if not path.is_file():
        return []
    rows = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
            task = json.loads(line)["task"]
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError):
            logger.warning("%s line %d is cut off or corrupt; dropped", path, number)
            continue
        rows.append((task, line))
    return rows


OUTPUT_NAMES = (RESULTS_NAME, TABLE_NAME, PREDICTIONS_NAME)


def _start_fresh(output_dir: Path, overwrite: bool) -> None:
    """Clear the outputs of an earlier evaluation in `output_dir`, only when the caller said to replace them.

    results.json goes first, so that no moment leaves it listing tasks whose predictions are already gone.
    """
    existing = [name for name in OUTPUT_NAMES if (output_dir / name).exists()]
    partial = output_dir / PARTIAL_DIR
    if partial.is_dir() and any(partial.iterdir()):
        existing.append(f"{PARTIAL_DIR}/ (a task scored in part)")
    if existing and not overwrite:
        raise EvalError(f"{output_dir} already holds an evaluation ({', '.join(existing)}); pass --resume to "
                        "continue it, --overwrite to replace it, or use another --output")  # fmt: skip
    for name in OUTPUT_NAMES:
        (output_dir / name).unlink(missing_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    write_text_atomic(output_dir / PREDICTIONS_NAME, "")


def _append_rows(path: Path, rows: Sequence[dict]) -> None:
    """Append a task's predictions and flush them to disk before results.json may list the task."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        handle.flush()
        os.fsync(handle.fileno())


def resolve_format(lm: EvalModel, fmt: Format | None) -> Format:
    """The prompt format of an evaluation: `fmt` when given, else the one the adapter was trained with, else
    `letters` (the single place that decides it; None = not chosen by the caller)."""
    return settled("format", fmt, lm.trained_with, "letters")


def _check_options(
    scoring: str, fmt: str, tasks: Sequence[str], batch_size: int, limit: int | None, split: str = "full",
    bbh_form: str | None = None, map_yes_no: bool = False,
) -> None:  # fmt: skip
    if scoring not in SCORINGS:
        raise EvalError(f"unknown scoring {scoring!r}; expected one of {', '.join(SCORINGS)}")
    if fmt not in FORMATS:
        raise EvalError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if split not in EVAL_SPLITS:
        raise EvalError(f"unknown split {split!r}; expected one of {', '.join(EVAL_SPLITS)}")
    if bbh_form is not None and bbh_form not in BBH_FORMS:
        raise EvalError(f"unknown BBH form {bbh_form!r}; expected one of {', '.join(BBH_FORMS)}")
    if map_yes_no and scoring != "generate":
        raise EvalError("--map-yes-no reads generated answers; it needs --scoring generate")
    if scoring == "generate" and fmt not in LETTER_FORMATS and any(not get_task(t).bbh for t in tasks):
        raise EvalError(
            "generate scoring reads an answer letter, which needs --format letters or official (cloze has none)"
        )
    if batch_size < 1:
        raise EvalError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be a positive number of instances per task, got {limit}")


def _task_requests(
    task: str, data_root: Path | str | None, limit: int | None, split: str, lm: EvalModel, fmt: str,
    answer_room: int, form: str,
) -> tuple[list, Any]:  # fmt: skip
    """A task's instances and requests. Data errors (trex.errors) are this task's failure, not the run's: readers
    name the file and line; a wrongly typed field that only fails deeper (a KeyError or TypeError on a record) is
    turned into a DataError naming the task, so the other tasks still run."""
    try:
        instances = load_task(task, "eval", data_root=data_root, limit=limit, eval_split=split)
        request_set = build_requests(task, instances, fmt, lm.tokenizer, lm.chat_template, lm.context_length,
                                     answer_room, form)  # fmt: skip
    except (KeyError, TypeError, AttributeError, IndexError, UnicodeDecodeError) as err:
        raise DataError(f"{task}: unreadable evaluation data ({type(err).__name__}: {err})") from err
    return instances, request_set


def _check_finite_scores(task: str, rows: Sequence[dict]) -> None:
    """A NaN or infinite log-likelihood is an error, never an accuracy (argmax over NaN picks option 0)."""
    bad = [row for row in rows if any(not math.isfinite(x) for x in row.get("scores", ()))]
    if bad:
        raise EvalError(
            f"{task}: the model gave non-finite log-likelihoods for {len(bad)} of {len(rows)} instances (first: "
            f"{bad[0]['uid']}); check the adapter's weights and inputs"
        )


def evaluate(
    lm: EvalModel,
    tasks: Sequence[str],
    scoring: Scoring = "generate",
    fmt: Format | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    data_root: Path | str | None = None,
    output_dir: Path | str | None = None,
    dump_requests: Path | str | None = None,
    metric: str = "acc",
    resume: bool = False,
    overwrite: bool = False,
    split: EvalSplit = "full",
    bbh_form: BbhForm | None = None,
    map_yes_no: bool = False,
) -> EvalRun:
    """Evaluate `lm` on `tasks` (names, `suite`, `bbh`) and return the run; files go to `output_dir` if given.

    `limit` keeps the first N instances of each task's evaluation split. `dump_requests` writes every request
    (exact prompt, option continuations, gold index, intuition text) as JSONL before it is scored. `metric`
    (`acc` or `acc_norm`) is the one shown in table.md; results.json has both. `resume` keeps the tasks an
    earlier run with the same settings finished in `output_dir` and scores only the rest. `overwrite` replaces
    an earlier evaluation's files in `output_dir` (and an existing `dump_requests` file), which is refused
    otherwise.

    `fmt` None means the format the adapter was trained with, else `letters` (`resolve_format`). `split` is
    "full" (trex's evaluation splits) or "official" (the T-REX authors'; a task whose split is not available
    offline fails with a DataError recorded in `failed`). `bbh_form` is "authors" or "trex" (default: the
    authors' form for the letter formats, trex's for cloze). `map_yes_no` reads a generated yes/no/true/false as
    the letter of the option that says it (the authors' reading), counted per task as `mapped`.
    """
    names = resolve_tasks(tasks)
    fmt = resolve_format(lm, fmt)
    _check_options(scoring, fmt, names, batch_size, limit, split, bbh_form, map_yes_no)
    form = default_bbh_form(fmt) if bbh_form is None else bbh_form
    settings = {
        "model": lm.name, "adapter": lm.adapter, "scoring": scoring, "format": fmt, "limit": limit,
        "batch_size": batch_size, "chat_template": lm.chat_template, "max_length": lm.context_length,
        "data_root": None if data_root is None else str(data_root), "table_metric": metric, "split": split,
        "bbh_form": form, "map_yes_no": map_yes_no,
    }  # fmt: skip
    scoring_settings = {k: v for k, v in settings.items() if k not in RESUME_IGNORED}  # what the scores depend on
    run = EvalRun(settings, env=environment(lm.device))
    out = Path(output_dir) if output_dir is not None else None
    if resume and out is None:
        raise EvalError("resume needs the output folder of the run to resume")
    if out is not None and out.exists() and not out.is_dir():
        raise EvalError(f"output folder {out} is a file; choose another --output")
    if dump_requests is not None and Path(dump_requests).exists() and not (resume or overwrite):
        raise EvalError(f"{dump_requests} already exists; pass --overwrite to replace it or choose another file")
    earlier_wall = 0.0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            run.results, earlier_wall = _resume(out, settings, names)
            if run.results:
                logger.info("resuming: %s already scored in %s", ", ".join(run.results), out)
        else:
            _start_fresh(out, overwrite)
    if dump_requests is not None:
        write_text_atomic(Path(dump_requests), "")
    answer_room = CHOICE_TOKENS if scoring == "generate" else 0
    start = time.perf_counter()
    tasks_bar = progress(names, desc=f"{scoring} on {len(names)} tasks", unit="task")
    for task in tasks_bar:
        tasks_bar.set_postfix_str(task)
        try:
            instances, request_set = _task_requests(task, data_root, limit, split, lm, fmt, answer_room, form)
            if dump_requests is not None:
                write_requests(Path(dump_requests), request_set.requests)
            if task in run.results:  # finished by the run being resumed
                continue
            if not request_set.requests:
                raise EvalError(f"{task}: none of its {len(instances)} instances fits {lm.context_length} tokens")
            partial = None if out is None else PartialTask(out, task, scoring_settings)
            result, rows = score_task(lm, request_set, scoring, batch_size, loaded=len(instances),
                                      map_yes_no=map_yes_no, partial=partial)  # fmt: skip
            _check_finite_scores(task, rows)
        except (DataError, EvalError) as err:
            logger.error("%s failed: %s", task, err)
            run.failed[task] = str(err)
        except Exception as err:  # record it beside the finished tasks' results, then stop
            run.failed[task] = f"{type(err).__name__}: {err}"
            run.wall_s = earlier_wall + time.perf_counter() - start
            if out is not None:
                _write(run, out, metric)
            raise
        else:
            run.results[task] = result
            logger.info("%s: acc %s over %d instances (%.2f inst/s)", task, result.accuracy, result.n,
                        result.instances_per_s)  # fmt: skip
            if out is not None:
                _append_rows(out / PREDICTIONS_NAME, rows)
        run.wall_s = earlier_wall + time.perf_counter() - start
        run.results = {t: run.results[t] for t in names if t in run.results}  # resumed tasks in their place
        if out is not None:
            _write(run, out, metric)
            if task in run.results:  # its rows are in predictions.jsonl and results.json lists it
                PartialTask(out, task, scoring_settings).remove()
    return run
