"""Low-level readers for the file formats of the suite, with errors that name the file and line."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trex.data.errors import DataError

Record = dict[str, Any]


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")


def read_jsonl(path: Path) -> Iterator[tuple[int, Record]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file."""
    _check_exists(path)
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{line_no}: not UTF-8 text (byte {err.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line_no}: malformed JSON ({err.msg} at column {err.colno})") from err
            if not isinstance(record, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            yield line_no, record


def read_json(path: Path) -> Any:
    """Parse a whole JSON file (JSON arrays of the LLM-Adapters/Alpaca copies, BBH task files)."""
    _check_exists(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: malformed JSON ({err.msg} at column {err.colno})") from err


def read_json_array(path: Path) -> Iterator[tuple[int, Record]]:
    """Yield (1-based item number, object) from a file holding one JSON array of objects."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    for item_no, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: item {item_no}: expected a JSON object, got {type(record).__name__}")
        yield item_no, record


def read_tsv(path: Path) -> Iterator[tuple[int, Record]]:
    """Yield (1-based line number, row as dict) for a TSV file with a header line."""
    _check_exists(path)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            yield reader.line_num, row


def require(record: Record, fields: tuple[str, ...], where: str) -> None:
    """Raise a DataError naming the first missing field; `where` is "file:line"."""
    for name in fields:
        if name not in record or record[name] is None:
            raise DataError(f"{where}: missing field {name!r} (present: {sorted(record)})")
