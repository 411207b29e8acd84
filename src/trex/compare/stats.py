"""Means over seeds with 95% bootstrap intervals, and paired differences to a reference method.

Two sources of noise make a comparison's numbers move: which evaluation instances happened to be in the sample
(~200 a task) and which training seed a run got. One bootstrap draw resamples both: the instances of every task
(with replacement) and, per method, its seeds (a resampled seed is a whole training run, so the same seed counts
are used for every task of a draw). Every method is scored on the same instances, so the instance resample of a
draw is applied to all methods alike: the difference of two methods in a draw is then *paired*, and the large
share of the instance noise that both methods have in common (an easy sample is easy for both) cancels. This is
why a paired interval is much narrower than the two methods' own intervals suggest.

Intervals are percentile intervals of the draws; point estimates are the observed means (not the draws' mean).
Everything is vectorised numpy with one seeded generator, so a report is reproducible to the last digit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

DRAWS = 2000
"""Bootstrap draws: percentile intervals of 2,000 draws move by ~0.1 point between generator seeds."""


@dataclass(frozen=True)
class Estimate:
    """An observed value with its 95% interval (fractions, not percent)."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of zero (for differences)."""
        return self.low > 0 or self.high < 0


@dataclass
class MethodStats:
    """One method: per task and on average over tasks, its mean over seeds and its difference to the reference."""

    seeds: int
    tasks: dict[str, Estimate] = field(default_factory=dict)
    average: Estimate | None = None
    diff_tasks: dict[str, Estimate] = field(default_factory=dict)
    diff_average: Estimate | None = None


def _interval(value: float, draws: np.ndarray) -> Estimate:
    low, high = np.percentile(draws, [2.5, 97.5])
    return Estimate(float(value), float(low), float(high))


def bootstrap(
    correct: Mapping[str, Mapping[str, np.ndarray]],
    reference: str | None = "lora",
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, MethodStats]:
    """Statistics of every method from its correctness matrices.

    ``correct[method][task]`` is a (seeds, instances) 0/1 array whose columns are the same instances, in the same
    order, for every method (see ``trex.compare.results.correctness``). Tasks missing for some method are left
    out of the average of every method, so averages always cover the same tasks. Differences are ``method -
    reference``, paired over instances; the reference gets none (and none are made if it is absent).
    """
    rng = np.random.default_rng(seed)
    methods = list(correct)
    tasks = [t for t in next(iter(correct.values()), {}) if all(t in correct[m] for m in methods)]
    # per method, one resample of its seeds per draw (used for every task of that draw)
    seed_weights = {}
    for method in methods:
        n_seeds = next(iter(correct[method].values())).shape[0] if correct[method] else 1
        seed_weights[method] = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=draws) / n_seeds
    task_draws: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
    stats = {m: MethodStats(seeds=seed_weights[m].shape[1]) for m in methods}
    all_tasks = list(dict.fromkeys(t for m in methods for t in correct[m]))
    for task in all_tasks:
        holders = [m for m in methods if task in correct[m]]
        n = correct[holders[0]][task].shape[1]
        # one resample of the instances per draw, shared by every method: the pairing
        instance_weights = rng.multinomial(n, np.full(n, 1 / n), size=draws) / n  # (draws, n)
        for method in holders:
            matrix = np.asarray(correct[method][task], dtype=float)  # (seeds, n)
            if matrix.shape[1] != n:
                raise ValueError(f"{method} has {matrix.shape[1]} instances of {task}, others {n}: not aligned")
            per_seed = instance_weights @ matrix.T  # (draws, seeds)
            task_draws[method][task] = (per_seed * seed_weights[method]).sum(axis=1)
            stats[method].tasks[task] = _interval(matrix.mean(), task_draws[method][task])
    for method in methods:
        if tasks:
            observed = np.mean([np.asarray(correct[method][t], dtype=float).mean() for t in tasks])
            average_draws = np.mean([task_draws[method][t] for t in tasks], axis=0)
            stats[method].average = _interval(observed, average_draws)
    if reference is None or reference not in correct:
        return stats
    for method in methods:
        if method == reference:
            continue
        shared = [t for t in correct[method] if t in correct[reference]]
        for task in shared:
            value = stats[method].tasks[task].value - stats[reference].tasks[task].value
            stats[method].diff_tasks[task] = _interval(value, task_draws[method][task] - task_draws[reference][task])
        if tasks:
            average_draws = np.mean([task_draws[method][t] - task_draws[reference][t] for t in tasks], axis=0)
            value = stats[method].average.value - stats[reference].average.value
            stats[method].diff_average = _interval(value, average_draws)
    return stats
