"""The two scoring modes over a task's requests: per-instance predictions and the task's accuracy.

``loglik`` ranks the option continuations by log-likelihood (`acc`: summed, `acc_norm`: per character);
``generate`` decodes greedily and reads the answer (see `trex.eval.generate`). Both take the same requests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from trex.eval.generate import generate_answers, predict_detail
from trex.eval.lm import EvalModel
from trex.eval.loglik import LoglikItem, score_continuations
from trex.eval.metrics import choose, wilson_interval
from trex.eval.partial import CHUNK_INSTANCES, PartialTask, ScoredSoFar
from trex.eval.progress import progress
from trex.eval.requests import EvalRequest, RequestSet

Scoring = Literal["generate", "loglik"]
SCORINGS: tuple[Scoring, ...] = ("generate", "loglik")


@dataclass
class TaskResult:
    """Accuracy of one task with its 95% Wilson interval, and what happened to every loaded instance.

    `n` counts scored instances; `truncated` had their passage shortened to fit the context, `dropped` did not
    fit even without it, `skipped` cannot be scored in this mode (BBH free text under loglik), `unreadable`
    generations had no answer to read (counted wrong), `mapped` generations were a yes/no/true/false word read as
    a letter (only with the yes/no mapping on). `accuracy_norm` is lm-eval's acc_norm (loglik only).
    """

    task: str
    scoring: str
    n: int
    correct: int
    accuracy: float | None
    ci95: tuple[float, float]
    loaded: int
    truncated: int = 0
    dropped: int = 0
    skipped: int = 0
    unreadable: int = 0
    mapped: int = 0
    correct_norm: int | None = None
    accuracy_norm: float | None = None
    ci95_norm: tuple[float, float] | None = None
    wall_s: float = 0.0
    instances_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        """The inverse of `to_dict` (results.json stores the intervals as lists)."""
        result = cls(**data)
        result.ci95 = tuple(result.ci95)
        if result.ci95_norm is not None:
            result.ci95_norm = tuple(result.ci95_norm)
        return result


def _accuracy(correct: int, n: int) -> tuple[float | None, tuple[float, float]]:
    return (correct / n if n else None), wilson_interval(correct, n)


def score_loglik(lm: EvalModel, requests: Sequence[EvalRequest], batch_size: int) -> tuple[list[dict], int]:
    """Predictions of every request with options (free-text ones are left out), and how many were truncated."""
    scorable = [r for r in requests if r.options]
    items = [LoglikItem(r.prompt, r.options, r.intuition_text, r.task) for r in scorable]
    scores, truncated = score_continuations(lm, items, batch_size)
    rows = []
    for request, option_scores in zip(scorable, scores, strict=True):
        logprobs = [s.logprob for s in option_scores]
        pred, pred_norm = choose(logprobs, request.options)
        rows.append({
            "task": request.task, "uid": request.uid, "index": request.index, "options": request.options,
            "scores": logprobs, "greedy": [s.greedy for s in option_scores], "prediction": pred,
            "prediction_norm": pred_norm, "gold": request.gold, "correct": pred == request.gold,
            "correct_norm": pred_norm == request.gold, "truncated": request.truncated,
        })  # fmt: skip
    return rows, truncated


def score_generate(
    lm: EvalModel, requests: Sequence[EvalRequest], batch_size: int, map_yes_no: bool = False
) -> list[dict]:
    """Predictions of every request from its greedy generation (`map_yes_no`: the authors' yes/no reading)."""
    rows = []
    for request, text in zip(requests, generate_answers(lm, requests, batch_size), strict=True):
        pred, correct, mapped = predict_detail(request, text, map_yes_no)
        rows.append({
            "task": request.task, "uid": request.uid, "index": request.index, "options": request.options,
            "generated": text, "prediction": pred, "gold": request.gold, "target": request.target,
            "correct": correct, "truncated": request.truncated, "mapped": mapped,
        })  # fmt: skip
    return rows


def score_requests(
    lm: EvalModel, requests: Sequence[EvalRequest], scoring: Scoring, batch_size: int, map_yes_no: bool = False
) -> tuple[list[dict], int]:
    """Prediction rows of `requests` (loglik leaves out free-text ones) and how many were left-truncated."""
    if scoring == "loglik":
        return score_loglik(lm, requests, batch_size)
    return score_generate(lm, requests, batch_size, map_yes_no), 0


def score_task(
    lm: EvalModel, request_set: RequestSet, scoring: Scoring, batch_size: int, loaded: int, map_yes_no: bool = False,
    partial: PartialTask | None = None,
) -> tuple[TaskResult, list[dict]]:  # fmt: skip
    """Score one task's requests; the result counts every loaded instance (scored, dropped or skipped).

    Requests are scored in chunks of ``CHUNK_INSTANCES``; with `partial`, every finished chunk is saved there and
    the chunks an interrupted sitting saved are not scored again (`trex.eval.partial`).
    """
    requests = request_set.requests
    so_far = partial.load() if partial is not None else ScoredSoFar()
    done = {(row["uid"], row["index"]) for row in so_far.rows}
    left = [r for r in requests if (r.uid, r.index) not in done]
    starts = range(0, len(left), CHUNK_INSTANCES)
    chunks = progress(starts, desc=f"{request_set.task}: chunks of {CHUNK_INSTANCES}", unit="chunk", leave=False,
                      disable=len(starts) < 2)  # fmt: skip
    for start in chunks:
        began = time.perf_counter()
        rows, left_truncated = score_requests(lm, left[start : start + CHUNK_INSTANCES], scoring, batch_size,
                                              map_yes_no)  # fmt: skip
        wall = time.perf_counter() - began
        if partial is not None:
            partial.append(rows, left_truncated, wall)
        so_far.add(rows, left_truncated, wall)
    rows = sorted(so_far.rows, key=lambda row: row["index"])
    return task_result(request_set, scoring, rows, so_far.left_truncated, so_far.wall_s, loaded), rows


def task_result(
    request_set: RequestSet, scoring: Scoring, rows: Sequence[dict], left_truncated: int, wall: float, loaded: int
) -> TaskResult:
    """The task's accuracy and counts from its prediction rows."""
    requests = request_set.requests
    n, correct = len(rows), sum(r["correct"] for r in rows)
    accuracy, ci = _accuracy(correct, n)
    result = TaskResult(
        request_set.task, scoring, n, correct, accuracy, ci, loaded,
        truncated=request_set.n_truncated + left_truncated, dropped=len(request_set.dropped),
        skipped=len(requests) - n, wall_s=wall, instances_per_s=n / wall if wall > 0 else 0.0,
    )  # fmt: skip
    if scoring == "loglik":
        result.correct_norm = sum(r["correct_norm"] for r in rows)
        result.accuracy_norm, result.ci95_norm = _accuracy(result.correct_norm, n)
    else:
        result.unreadable = sum(r["prediction"] is None and bool(r["options"]) for r in rows)
        result.mapped = sum(r["mapped"] for r in rows)
    return result
