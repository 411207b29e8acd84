"""Accuracy with a 95% confidence interval, and lm-evaluation-harness' `acc` / `acc_norm` choice rules."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959964
"""Two-sided 95% normal quantile."""


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion: unlike the normal approximation it stays inside [0, 1] and is
    honest for the small n of `--limit` runs and for accuracies near 0 or 1."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def argmax_first(values: Sequence[float]) -> int:
    """Index of the largest value, the lowest index on ties (numpy's argmax, as lm-eval uses)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def choose(logprobs: Sequence[float], options: Sequence[str]) -> tuple[int, int]:
    """(acc choice, acc_norm choice): the largest summed log-probability, and the largest per character of the
    option string (leading space included, as lm-eval counts a choice that carries its own delimiter)."""
    return argmax_first(logprobs), argmax_first([lp / max(len(o), 1) for lp, o in zip(logprobs, options, strict=True)])
