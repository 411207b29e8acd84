"""Staging the authors' MMLU split (cais/mmlu validation) for online users, with `datasets.load_dataset` mocked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trex.cli import app
from trex.data import load_task
from trex.data.errors import DataError
from trex.data.stage import MMLU_VALIDATION_FILE, mmlu_record, write_mmlu_validation

# The first question of MMLU's abstract_algebra dev split as cais/mmlu serves it, and the same question as
# nutcracker-db converted it from the original CSV (../shared/data/mmlu/dev.jsonl, line 1): the reference the
# conversion must reproduce so that the registry's nutcracker reader reads a staged split unchanged.
CAIS_ROW = {
    "question": "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.",
    "subject": "abstract_algebra",
    "choices": ["0", "1", "2", "3"],
    "answer": 1,
}
NUTCRACKER_LINE = (
    '{"subject": "abstract_algebra", "centerpiece": "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.", '
    '"options": ["0", "1", "2", "3"], "correct_options": ["B"], "correct_options_idx": [1], '
    '"correct_options_literal": ["1"]}'
)
OTHER_ROW = {"question": "Which is a prime?", "subject": "elementary_mathematics", "choices": ["4", "6", "7", "9"],
             "answer": 2}  # fmt: skip


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    import datasets

    calls: list[tuple] = []

    def fake_load_dataset(path, config, split):
        calls.append((path, config, split))
        return [CAIS_ROW, OTHER_ROW]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return calls


def test_a_cais_row_becomes_the_nutcracker_line_of_the_same_question() -> None:
    assert json.dumps(mmlu_record(CAIS_ROW, "row 1")) == NUTCRACKER_LINE


def test_staged_split_is_what_the_official_mmlu_split_loads(tmp_path: Path, fake_hub: list[tuple]) -> None:
    with pytest.raises(DataError, match="stage-mmlu-validation"):
        load_task("mmlu", "eval", tmp_path, eval_split="official")
    result = CliRunner().invoke(app, ["data", "stage-mmlu-validation", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert fake_hub == [("cais/mmlu", "all", "validation")]
    assert f"wrote {tmp_path / MMLU_VALIDATION_FILE}" in result.output
    instances = load_task("mmlu", "eval", tmp_path, eval_split="official")
    assert [(i.question, i.options, i.label, i.meta["subject"]) for i in instances] == [
        (CAIS_ROW["question"], ["0", "1", "2", "3"], 1, "abstract_algebra"),
        ("Which is a prime?", ["4", "6", "7", "9"], 2, "elementary_mathematics"),
    ]


def test_an_existing_split_is_kept_unless_overwrite(tmp_path: Path, fake_hub: list[tuple]) -> None:
    target = write_mmlu_validation([CAIS_ROW], tmp_path)
    again = CliRunner().invoke(app, ["data", "stage-mmlu-validation", "--data-root", str(tmp_path)])
    assert again.exit_code == 2 and "exists" in again.output and "--overwrite" in again.output
    assert target.read_text(encoding="utf-8").count("\n") == 1
    replaced = CliRunner().invoke(app, ["data", "stage-mmlu-validation", "--data-root", str(tmp_path), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert target.read_text(encoding="utf-8").count("\n") == 2


def test_a_row_count_other_than_the_authors_is_warned_about(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="trex.data.stage"):
        write_mmlu_validation([CAIS_ROW], tmp_path)
    assert "1 rows, not the 1531" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"answer": 4}, r"row 2: column 'answer' must be an index 0-3, got 4"),
        ({"answer": True}, r"row 2: column 'answer' must be an index 0-3, got True"),
        ({"choices": ["a", "b"]}, r"row 2: column 'choices' must hold 4 strings"),
        ({"question": None}, r"row 2: missing column 'question'"),
    ],
)
def test_bad_rows_are_named_and_nothing_is_written(tmp_path: Path, change: dict, message: str) -> None:
    row = {key: value for key, value in {**CAIS_ROW, **change}.items() if value is not None}
    with pytest.raises(DataError, match=message):
        write_mmlu_validation([OTHER_ROW, row], tmp_path)
    assert not (tmp_path / MMLU_VALIDATION_FILE).exists()


def test_refuses_a_data_root_in_the_instance_format(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="index.json"):
        write_mmlu_validation([CAIS_ROW], tmp_path)
