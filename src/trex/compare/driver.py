"""``trex compare``: train and evaluate every (method, seed) unit of a comparison, in pieces, over several sittings.

Layout: ``<out>/base/eval`` and ``<out>/<method>/seed-<s>/{train,eval}``. Each finished step writes ``done.json``
(its wall time and the versions) beside its results, so a re-run skips it; a killed step resumes from its last
complete checkpoint (training) or finished task (evaluation). A ``running.json`` lock names the process working on
a unit, so ``--status`` can say what runs now and two sittings never work on the same unit; a training step keeps it
(and ``sittings.json``) beside its folder as ``train.running.json``, since the run folder must hold only the run.

Units run in an interleaved order (seed 0 of every method, then seed 1, ...), so a comparison cut short still has
every method. Several workers (``--workers N``, or ``trex compare CONFIG`` started again in another shell) share a
comparison: each takes the next step no live process holds, and an evaluation waits for its unit's training.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trex.compare.config import BASE, CompareConfig
from trex.io import write_text_atomic

logger = logging.getLogger(__name__)

DONE = "done.json"
RUNNING = "running.json"
SITTINGS = "sittings.json"
"""Wall and CPU time spent by the sittings of a step so far (written every ``HEARTBEAT_S``: a kill -9 loses at most
that)."""


@dataclass(frozen=True)
class Step:
    """One piece of work: train or evaluate one method at one seed (or evaluate the base model)."""

    method: str
    seed: int | None
    kind: str  # "train" or "eval"

    @property
    def label(self) -> str:
        return self.method if self.seed is None else f"{self.method}/seed-{self.seed}/{self.kind}"

    def folder(self, config: CompareConfig) -> Path:
        if self.seed is None:
            return config.output_dir / BASE / "eval"
        return config.output_dir / self.method / f"seed-{self.seed}" / self.kind

    def marker(self, config: CompareConfig, name: str) -> Path:
        """Where the step's lock and sittings record live. A training step's go beside its folder, not in it:
        ``run_training`` refuses a non-empty folder without a recipe.yaml (another program's folder), which a
        lock written before training starts would otherwise make of every fresh unit."""
        folder = self.folder(config)
        return folder.parent / f"{self.kind}.{name}" if self.kind == "train" else folder / name


def steps(config: CompareConfig) -> list[Step]:
    """Every step, base first, then seed by seed across methods (train before eval of a unit)."""
    order = [Step(BASE, None, "eval")]
    most = max(len(entry.seeds) for entry in config.methods.values())
    for index in range(most):
        for name, entry in config.methods.items():
            if index < len(entry.seeds):
                seed = entry.seeds[index]
                order += [Step(name, seed, "train"), Step(name, seed, "eval")]
    return order


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine's process: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state(step: Step, config: CompareConfig) -> str:
    """'done', 'running' (a live process holds the lock), or 'left'.

    A finished training step whose adapter weights are gone (they are not committed with the results; a new
    checkout has only the small files) counts as left until its evaluation is done: it is trained again.
    """
    if (step.folder(config) / DONE).is_file():
        if step.kind != "train" or (step.folder(config) / "adapter" / "adapter_model.safetensors").is_file():
            return "done"
        if (step.folder(config).parent / "eval" / DONE).is_file():
            return "done"
    lock = read_json(step.marker(config, RUNNING))
    if lock and _alive(int(lock.get("pid", -1)), str(lock.get("host", ""))):
        return "running"
    return "left"


class StepBusy(RuntimeError):
    """Another live process holds the step's lock."""


class StepLock:
    """``running.json`` with this process's pid; refuses a step another live process holds.

    The file is created exclusively (``O_EXCL``), so of two workers that find the same step left at the same
    moment exactly one gets it; a lock left by a dead process is taken over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> StepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}) + "\n"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._live_holder()
                if holder is not None:
                    break
                self.path.unlink(missing_ok=True)  # a dead process's lock (or this process's own)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(record)
            return self
        holder = self._live_holder() or {"pid": "?", "host": "?"}
        raise StepBusy(f"{self.path.parent} is being worked on by process {holder['pid']} on {holder['host']}")

    def _live_holder(self) -> dict | None:
        """The lock's record when another live process holds it, else None."""
        lock = read_json(self.path)
        if lock is None and self.path.exists():  # the worker that just created it is writing it
            time.sleep(0.1)
            lock = read_json(self.path)
        if lock and lock.get("pid") != os.getpid() and _alive(int(lock.get("pid", -1)), str(lock.get("host", ""))):
            return lock
        return None

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


HEARTBEAT_S = 60.0
"""How often a running step adds its sitting's wall time to ``sittings.json``."""


def _every(seconds: float, stop: threading.Event, action: Callable[[], None]) -> None:
    while not stop.wait(seconds):
        action()


class _TimeSpent:
    """A step's wall and CPU seconds: the earlier sittings' (from ``sittings.json``) plus this one's so far.

    CPU seconds are this process's (``time.process_time``, every thread), so the comparison can report the CPU its
    steps cost apart from the wall time that pauses and neighbouring jobs add. A step whose earlier sittings
    predate CPU accounting has ``cpu_s`` None: a partial sum would read as the whole.
    """

    def __init__(self, earlier: dict | None) -> None:
        earlier = earlier or {"wall_s": 0.0, "cpu_s": 0.0, "sittings": 0}
        self.wall_before = float(earlier["wall_s"])
        self.cpu_before = earlier.get("cpu_s", 0.0 if earlier["sittings"] == 0 else None)
        self.sittings_before = int(earlier["sittings"])
        self.wall_start = time.perf_counter()
        self.cpu_start = time.process_time()

    def so_far(self) -> dict:
        cpu = None if self.cpu_before is None else self.cpu_before + time.process_time() - self.cpu_start
        return {
            "wall_s": self.wall_before + time.perf_counter() - self.wall_start,
            "cpu_s": cpu,
            "sittings": self.sittings_before + 1,
        }


def run_step(step: Step, config: CompareConfig) -> dict:
    """Do one step (resuming what an interrupted sitting left) and write its ``done.json``."""
    folder = step.folder(config)
    sittings = step.marker(config, SITTINGS)
    with StepLock(step.marker(config, RUNNING)):
        spent = _TimeSpent(read_json(sittings))

        def record_sitting() -> None:
            write_text_atomic(sittings, json.dumps(spent.so_far()) + "\n")

        stop = threading.Event()
        heartbeat = threading.Thread(target=_every, args=(HEARTBEAT_S, stop, record_sitting), daemon=True)
        heartbeat.start()  # a sitting ended by SIGKILL or the machine going away loses at most one interval
        try:
            try:
                record = _train(step, config) if step.kind == "train" else _evaluate(step, config)
            finally:
                stop.set()
                heartbeat.join()
        except BaseException:
            record_sitting()
            raise
        record = {
            **record,
            **spent.so_far(),
            "host": socket.gethostname(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / DONE, json.dumps(record, indent=2) + "\n")
    return record


def _train(step: Step, config: CompareConfig) -> dict:
    from trex.train.metrics import logged_training
    from trex.train.run import TRAINING_RECORD, run_training

    recipe = config.unit_recipe(step.method, step.seed)
    run_dir = Path(recipe.output_dir)
    if (run_dir / "adapter" / TRAINING_RECORD).is_file():  # a sitting killed after saving it, before done.json
        steps, train_loss = logged_training(run_dir / "metrics.jsonl")
    else:
        evaluation = step.folder(config).parent / "eval"
        if evaluation.is_dir():  # scored with an adapter that is gone (a new checkout lost it): never mixed in
            logger.warning("compare: %s is trained again; removing the partial evaluation %s", step.label, evaluation)
            shutil.rmtree(evaluation)
        result = run_training(recipe, resume=run_dir.exists())  # its train_loss is logged_training's too
        steps, train_loss = result.steps, result.train_loss
    return {"steps": steps, "train_loss": train_loss, "adapter": str(run_dir / "adapter")}


def _evaluate(step: Step, config: CompareConfig) -> dict:
    from trex.eval import evaluate, load_eval_model

    section = config.evaluation
    recipe = config.base_recipe() if step.seed is None else config.unit_recipe(step.method, step.seed)
    adapter = None
    if step.seed is not None:
        adapter = step.folder(config).parent / "train" / "adapter"
        if not (adapter / "adapter_config.json").is_file():
            raise RuntimeError(f"{step.label}: training has not finished ({adapter} is missing)")
    lm = load_eval_model(
        recipe.model.name_or_path, adapter, chat_template=recipe.data.chat_template, max_length=section.max_length
    )
    run = evaluate(
        lm, section.tasks, scoring=section.scoring, fmt=section.format, limit=section.limit,
        batch_size=section.batch_size, data_root=section.data_root or recipe.data.data_root,
        output_dir=step.folder(config), metric=section.metric, resume=True,
    )  # fmt: skip
    if run.failed:
        raise RuntimeError(f"{step.label}: tasks failed: {', '.join(sorted(run.failed))}")
    return {"instances": sum(r.n for r in run.results.values()), "instances_per_s": run.instances_per_s}


def pending(config: CompareConfig) -> Iterator[Step]:
    """Steps left to do, in order, skipping those another live process works on."""
    for step in steps(config):
        if state(step, config) == "left":
            yield step


def expected_wall(step: Step, config: CompareConfig, with_evaluation: bool = True) -> float | None:
    """Seconds the step is expected to take, from finished steps of its kind: the median over the same method's
    when it has two or more, else over every method's (None before any). A training counts its evaluation too
    (unless ``with_evaluation`` is False): an adapter trained but not evaluated before the sitting ends is worth
    little where the next sitting is a new checkout without it.

    Each finished step counts as the smaller of its wall and CPU seconds: a one-thread worker's CPU time is its
    wall time without the pauses and neighbours a shared machine adds, and a many-thread worker's wall time is
    below its CPU time. Medians, since one step slowed for an hour must not move every estimate."""

    def typical(kind: str) -> float | None:
        same_method, same_kind = [], []
        for other in steps(config):
            record = read_json(other.folder(config) / DONE) if other.kind == kind else None
            if record and "wall_s" in record:
                spent = _work_seconds(record)
                same_kind.append(spent)
                if other.method == step.method:
                    same_method.append(spent)
        walls = same_method if len(same_method) >= 2 else same_kind
        return statistics.median(walls) if walls else None

    needed = typical(step.kind)
    if with_evaluation and step.kind == "train" and needed is not None:
        evaluation = typical("eval")
        needed = None if evaluation is None else needed + evaluation
    return needed


def parse_deadline(text: str, now: datetime.datetime | None = None) -> float:
    """``--until``: ``HH:MM`` (the next time the machine's clock shows it) or an ISO date and time, as a
    ``time.time()`` value."""
    now = now or datetime.datetime.now()
    try:
        if len(text) <= 5:
            clock = datetime.datetime.strptime(text, "%H:%M").time()
            moment = datetime.datetime.combine(now.date(), clock)
            if moment <= now:
                moment += datetime.timedelta(days=1)
        else:
            moment = datetime.datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"--until {text!r}: give HH:MM or an ISO date and time (2026-12-04T13:10)") from err
    return moment.timestamp()


def run_comparison(config: CompareConfig, only: list[str] | None = None, deadline: float | None = None) -> list[Step]:
    """Run every step left (of the methods in ``only``, if given); returns the steps done in this sitting.

    With a ``deadline`` (a ``time.time()`` value) a step is started only when it is expected to end before it
    (``expected_wall``; a step of a kind never timed is started), so a sitting with a known end stops cleanly."""
    done = []
    for step in pending(config):
        if only and step.method not in only:
            continue
        if (
            step.kind == "eval"
            and step.seed is not None
            and state(Step(step.method, step.seed, "train"), config) != "done"
        ):
            continue  # its training runs in another sitting now
        needed = expected_wall(step, config) if deadline is not None else None
        if deadline is not None and needed is not None and time.time() + needed > deadline:
            left = max(0.0, deadline - time.time())
            logger.warning(
                "compare: not starting %s: it takes about %.0f min, %.0f min are left before the deadline",
                step.label, needed / 60, left / 60,
            )  # fmt: skip
            continue
        logger.warning("compare: %s", step.label)
        try:
            run_step(step, config)
        except StepBusy as busy:  # another worker took it between our look and our lock
            logger.warning("compare: skipping %s (%s)", step.label, busy)
            continue
        done.append(step)
    return done


def _work_seconds(record: dict) -> float:
    """The smaller of a time record's wall and CPU seconds (why: ``expected_wall``)."""
    return min(float(record["wall_s"]), float(record.get("cpu_s") or record["wall_s"]))


def status_rows(config: CompareConfig) -> tuple[list[tuple[str, str, float | None]], float | None]:
    """(label, state, wall seconds) per step, and the projected seconds of step time for what is left (the sum of
    ``expected_wall`` over the steps not done, less what a running step has spent so far by its heartbeat, never
    below zero; None while a kind of step has never finished)."""
    rows = []
    for step in steps(config):
        current = state(step, config)
        record = read_json(step.folder(config) / DONE) if current == "done" else None
        rows.append((step, current, float(record["wall_s"]) if record and "wall_s" in record else None))
    projected: float | None = 0.0
    for step, current, _ in rows:
        if current != "done":
            needed = expected_wall(step, config, with_evaluation=False)
            if needed is None:
                projected = None
                break
            spent = read_json(step.marker(config, SITTINGS)) if current == "running" else None
            projected += max(0.0, needed - _work_seconds(spent)) if spent and "wall_s" in spent else needed
    return [(s.label, c, w) for s, c, w in rows], projected
