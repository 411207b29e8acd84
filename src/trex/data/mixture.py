"""The multitask training mixture: per-task caps, proportional or temperature sampling, seeded.

Temperature sampling (as in T5/mT5) gives task i a share proportional to n_i ** (1 / T) of the mixture, so
T = 1 is proportional and larger T moves towards uniform, up-sampling small tasks (by repeating their
instances) and down-sampling large ones. Every random choice comes from RNGs seeded with the seed and the
task name, so the same inputs give the same mixture, in the same order.
"""

from __future__ import annotations

import io
import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

from rich.console import Console
from rich.table import Table

from trex.data.errors import DataError
from trex.data.instance import TaskInstance

logger = logging.getLogger(__name__)

Sampling = Literal["proportional", "temperature"]


def _cap_for(caps: int | Mapping[str, int] | None, task: str) -> int | None:
    return caps.get(task) if isinstance(caps, Mapping) else caps


def _draw(pool: Sequence[TaskInstance], count: int, rng: random.Random) -> list[TaskInstance]:
    """`count` instances from `pool`: whole repeats of the pool, then a sample without replacement."""
    repeats, rest = divmod(count, len(pool))
    return list(pool) * repeats + [pool[i] for i in sorted(rng.sample(range(len(pool)), rest))]


def _largest_remainder(weights: dict[str, float], total: int) -> dict[str, int]:
    """Integer counts summing to `total`, proportional to `weights` (ties broken by task name)."""
    norm = sum(weights.values())
    exact = {t: total * w / norm for t, w in weights.items()}
    counts = {t: int(x) for t, x in exact.items()}
    by_remainder = sorted(exact, key=lambda t: (counts[t] - exact[t], t))
    for task in by_remainder[: total - sum(counts.values())]:
        counts[task] += 1
    return counts


def build_mixture(
    tasks: Mapping[str, Sequence[TaskInstance]],
    caps: int | Mapping[str, int] | None = None,
    sampling: Sampling = "proportional",
    temperature: float = 2.0,
    total: int | None = None,
    seed: int = 0,
) -> list[TaskInstance]:
    """Mix the training instances of several tasks into one shuffled list.

    Args:
        tasks: task name -> its training instances (e.g. from `load_task(name, "train")`).
        caps: maximum instances taken from each task before sampling (one int for all, or per task); a
            seeded sample is kept when a task has more (the paper caps each task at a fixed size).
        sampling: "proportional" keeps every capped instance once; "temperature" re-weights tasks by
            n ** (1 / temperature) and up-/down-samples them to fill `total`.
        temperature: T of temperature sampling (ignored for proportional).
        total: mixture size for temperature sampling (default: the number of capped instances).
        seed: seed of every random choice.
    """
    if sampling not in ("proportional", "temperature"):
        raise DataError(f"unknown sampling {sampling!r}; expected 'proportional' or 'temperature'")
    if sampling == "temperature" and temperature <= 0:
        raise DataError(f"temperature must be positive, got {temperature}")
    if not tasks:
        raise DataError("the mixture has no tasks")
    capped: dict[str, list[TaskInstance]] = {}
    for name in sorted(tasks):
        pool = list(tasks[name])
        if not pool:
            raise DataError(f"task {name!r} has no training instances")
        cap = _cap_for(caps, name)
        if cap is not None and len(pool) > cap:
            keep = sorted(random.Random(f"{seed}:cap:{name}").sample(range(len(pool)), cap))
            pool = [pool[i] for i in keep]
        capped[name] = pool
    if sampling == "proportional":
        counts = {name: len(pool) for name, pool in capped.items()}
    else:
        size = total if total is not None else sum(len(p) for p in capped.values())
        counts = _largest_remainder({n: len(p) ** (1.0 / temperature) for n, p in capped.items()}, size)
    mixture: list[TaskInstance] = []
    for name, pool in capped.items():
        mixture += _draw(pool, counts[name], random.Random(f"{seed}:draw:{name}"))
    random.Random(f"{seed}:shuffle").shuffle(mixture)
    logger.info("%s", mixture_summary_text(mixture, tasks))
    return mixture


def mixture_table(mixture: Sequence[TaskInstance], tasks: Mapping[str, Sequence[TaskInstance]]) -> Table:
    """A rich table: per task, instances available, in the mixture, distinct ones used, and share."""
    counts = Counter(i.task for i in mixture)
    distinct = {name: len({i.uid for i in mixture if i.task == name}) for name in counts}
    table = Table(title=f"Training mixture ({len(mixture)} instances)")
    for column in ("task", "available", "in mixture", "distinct", "share"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name in sorted(tasks):
        n = counts.get(name, 0)
        share = f"{100 * n / len(mixture):.1f}%" if mixture else "-"
        table.add_row(name, str(len(tasks[name])), str(n), str(distinct.get(name, 0)), share)
    return table


def mixture_summary_text(mixture: Sequence[TaskInstance], tasks: Mapping[str, Sequence[TaskInstance]]) -> str:
    """The mixture table rendered as plain text, for logs and run folders."""
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(mixture_table(mixture, tasks))
    return console.file.getvalue()  # type: ignore[attr-defined]
