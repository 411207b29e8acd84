"""The intuition CLI: fit (through its function, with the fake embedder) and show / errors (through typer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trex.intuition.bank import IntuitionBank, fit_intuition_bank
from trex.intuition.cli import app, read_prompts

from .fakes import FakeEmbedder, make_corpus

runner = CliRunner()


def write_tasks(folder: Path) -> list[Path]:
    texts, labels = make_corpus()
    paths = []
    for task in sorted(set(labels)):
        path = folder / f"{task}.jsonl"
        rows = [{"text": t} for t, label in zip(texts, labels, strict=True) if label == task]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


def test_fit_then_show(tmp_path: Path) -> None:
    paths = write_tasks(tmp_path)
    texts, labels = read_prompts(paths, None, "text", None, None, None, seed=0)
    bank = fit_intuition_bank(texts, 4, embedder=FakeEmbedder(), backend="torch", labels=labels)
    bank.save(tmp_path / "bank")
    loaded = IntuitionBank.load(tmp_path / "bank")
    assert loaded.cluster_sizes == bank.cluster_sizes
    assert {next(iter(c.label_counts)) for c in loaded.clusters} == {"cooking", "law", "science", "sports"}

    result = runner.invoke(app, ["show", str(tmp_path / "bank"), "--max-chars", "40"])
    assert result.exit_code == 0, result.output
    assert "4 clusters, dim 256" in result.output and "fake-hash-256" in result.output
    for task in ("cooking (15)", "law (15)", "science (15)", "sports (15)"):
        assert task in result.output
    assert result.output.count("- ") >= 12


def test_fit_command_reports_missing_embedder_folder(tmp_path: Path) -> None:
    paths = write_tasks(tmp_path)
    missing = tmp_path / "no-model"
    result = runner.invoke(app, ["fit", *map(str, paths), "--out", str(tmp_path / "bank"), "--embedder", str(missing)])
    assert result.exit_code == 1
    assert "embedder folder not found" in result.output
    assert not (tmp_path / "bank").exists()


def test_show_reports_missing_bank(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "not an intuition bank" in result.output


def test_prompts_come_from_exactly_one_source(tmp_path: Path) -> None:
    paths = write_tasks(tmp_path)
    for inputs, tasks in ((paths, ["copa"]), (None, None)):
        with pytest.raises(ValueError, match="give either JSONL files or --task"):
            read_prompts(inputs, tasks, "text", None, None, None, seed=0)


def test_registry_tasks_are_sampled_reproducibly() -> None:
    first = read_prompts(None, ["copa", "wic"], "text", None, None, cap=5, seed=0)
    assert first == read_prompts(None, ["copa", "wic"], "text", None, None, cap=5, seed=0)
    assert first[1] == ["copa"] * 5 + ["wic"] * 5
    assert all(text.rstrip().endswith("Answer:") for text in first[0])
