"""JSONL reading for the fit command: texts, labels, and messages that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trex.intuition.inputs import read_jsonl_texts


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_labels_default_to_file_stem_or_come_from_field(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "boolq.jsonl", [{"text": "q1", "task": "x"}, {"text": "q2", "task": "y"}])
    b = write_jsonl(tmp_path / "wic.jsonl", [{"text": "q3", "task": "z"}])
    assert read_jsonl_texts([a, b]) == (["q1", "q2", "q3"], ["boolq", "boolq", "wic"])
    assert read_jsonl_texts([a, b], label_field="task") == (["q1", "q2", "q3"], ["x", "y", "z"])


def test_bad_lines_are_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok"}, {"prompt": "no text"}])
    with pytest.raises(ValueError, match=r"d.jsonl:2: no field 'text' \(fields: prompt\)"):
        read_jsonl_texts([path])
    write_jsonl(path, [{"text": 3}])
    with pytest.raises(ValueError, match="d.jsonl:1: field 'text' must be a string, got int"):
        read_jsonl_texts([path])
    path.write_text('{"text": "ok"}\n\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="d.jsonl:3: expected a JSON object, got list"):
        read_jsonl_texts([path])
    path.write_text("{oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match="d.jsonl:1: malformed JSON"):
        read_jsonl_texts([path])
    with pytest.raises(FileNotFoundError, match="input file not found"):
        read_jsonl_texts([tmp_path / "missing.jsonl"])
