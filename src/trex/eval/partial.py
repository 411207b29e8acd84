"""A task's scored chunks, kept on disk so that an interrupted task resumes where it stopped.

A task used to be the unit of resumption: HellaSwag's 10,042 generations take over three hours on one CPU core,
about a whole sitting on these machines, and a sitting cut off in the middle lost all of it. Scoring now runs in
chunks of ``CHUNK_INSTANCES``; each chunk's prediction rows are appended to ``partial/<task>.jsonl`` in the
output folder (flushed to disk) as it finishes, and ``--resume`` scores only what no chunk holds. The file's first
line records the settings that decide the scores, so rows of another setup are never mixed in; when the task's
result is written, the file goes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trex.io import write_text_atomic

logger = logging.getLogger(__name__)

PARTIAL_DIR = "partial"
CHUNK_INSTANCES = 256
"""Instances scored between two writes: minutes of work at CPU speeds, seconds on a GPU."""


@dataclass
class ScoredSoFar:
    """What earlier sittings scored of a task: its prediction rows, left-truncated count and scoring time."""

    rows: list[dict] = field(default_factory=list)
    left_truncated: int = 0
    wall_s: float = 0.0

    def add(self, rows: Sequence[dict], left_truncated: int, wall_s: float) -> None:
        self.rows.extend(rows)
        self.left_truncated += left_truncated
        self.wall_s += wall_s


class PartialTask:
    """``partial/<task>.jsonl``: a header with the settings, then one line per scored chunk."""

    def __init__(self, output_dir: Path, task: str, settings: dict[str, Any]) -> None:
        self.path = output_dir / PARTIAL_DIR / f"{task}.jsonl"
        self.settings = settings

    def load(self) -> ScoredSoFar:
        """The chunks an earlier sitting finished (none when the file is missing, or written with other settings;
        a line cut off by a kill is dropped)."""
        so_far = ScoredSoFar()
        if not self.path.is_file():
            return so_far
        lines = self.path.read_bytes().splitlines()
        try:
            header = json.loads(lines[0])["settings"] if lines else None
        except (ValueError, KeyError, TypeError):
            header = None
        if header != self.settings:
            logger.warning("%s was written with other settings (or is unreadable); scoring its task afresh", self.path)
            self.remove()
            return so_far
        whole = [lines[0]]
        for number, line in enumerate(lines[1:], 2):
            try:
                chunk = json.loads(line)
                so_far.add(chunk["rows"], int(chunk["left_truncated"]), float(chunk["wall_s"]))
            except (ValueError, KeyError, TypeError):
                logger.warning("%s line %d is cut off or corrupt; its instances are scored again", self.path, number)
                continue
            whole.append(line)
        if len(whole) < len(lines):  # appending starts after whole lines only
            write_text_atomic(self.path, b"".join(line + b"\n" for line in whole).decode("utf-8"))
        if so_far.rows:
            logger.info("%s: resuming after %d scored instances", self.path.stem, len(so_far.rows))
        return so_far

    def append(self, rows: Sequence[dict], left_truncated: int, wall_s: float) -> None:
        """Add one finished chunk, on disk before the next chunk starts."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.is_file()
        with open(self.path, "a", encoding="utf-8") as handle:
            if new:
                handle.write(json.dumps({"settings": self.settings}) + "\n")
            chunk = {"rows": list(rows), "left_truncated": left_truncated, "wall_s": wall_s}
            handle.write(json.dumps(chunk, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        if self.path.parent.is_dir() and not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()  # no task is in part: leave the output folder as a finished run has it
