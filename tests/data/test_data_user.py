"""User JSONL schema and the Hugging Face loader (with `datasets.load_dataset` mocked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trex.data import DataError, load_hf_task, load_jsonl_task, render


def _jsonl(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "mytask.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_user_jsonl_multiple_choice_and_free_text(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        [
            {"question": "2+2?", "options": ["3", "4"], "label": 1, "passage": "Maths."},
            {"prompt": "Say hi.", "target": "Hi!", "uid": "greet"},
        ],
    )
    mc, free = load_jsonl_task(path)
    assert (mc.task, mc.uid, mc.label, mc.passage) == ("mytask", "mytask.jsonl:1", 1, "Maths.")
    assert render(mc, "letters").target == " B"
    assert (free.uid, free.options, free.target_text) == ("greet", [], "Hi!")
    assert load_jsonl_task(path, task="other", limit=1)[0].task == "other"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"question": "q", "label": 0}, r"mytask\.jsonl:1: missing field 'options'"),
        ({"question": "q", "options": ["a", "b"]}, r"mytask\.jsonl:1: missing field 'label'"),
        ({"question": "q", "options": ["a", "b"], "label": 5}, "label 5 is outside the 2 options"),
        ({"question": "q", "options": ["a", "b"], "label": "1"}, "field 'label' has the wrong type"),
        ({"question": "q", "options": ["a"], "label": 0}, "at least two strings"),
        ({"prompt": "q"}, "missing field 'target'"),
    ],
)
def test_user_jsonl_errors(tmp_path: Path, record: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_jsonl_task(_jsonl(tmp_path, [record]))


def test_user_jsonl_empty_and_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no instances"):
        load_jsonl_task(_jsonl(tmp_path, []))
    with pytest.raises(DataError, match="data file not found"):
        load_jsonl_task(tmp_path / "absent.jsonl")


def test_hf_loader_maps_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(path, config, split):
        calls.append((path, config, split))
        return [{"q": "Is it?", "choices": ["yes", "no"], "answer": 1, "ctx": "Text."}] * 3

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    instances = load_hf_task(
        "org/thing", "validation", config="c", question="q", options="choices", label="answer", passage="ctx", limit=2
    )
    assert calls == [("org/thing", "c", "validation")]
    assert len(instances) == 2 and instances[0].task == "thing" and instances[0].label == 1
    assert instances[0].passage == "Text."
    with pytest.raises(DataError, match="missing column 'question'"):
        load_hf_task("org/thing", "validation")
