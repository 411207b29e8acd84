"""Evaluation progress bars that also reach a log file.

tqdm's ``disable=None`` hides a bar whenever stderr is not a terminal, which left a background evaluation
(``nohup trex eval ... > log``, hours for HellaSwag's 10,042 instances on a CPU) without a line of progress in its
log. Here the bar is always drawn; away from a terminal it is redrawn at most every ``LOG_INTERVAL_S`` seconds so
the log stays small.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


def progress(iterable: Iterable, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, shown on a terminal and in logs alike."""
    stream = kwargs.get("file") or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    kwargs.setdefault("mininterval", 0.1 if interactive else LOG_INTERVAL_S)
    kwargs.setdefault("disable", False)  # a caller may still hide a bar that would say nothing (one step)
    return tqdm(iterable, **kwargs)
