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
    assert result.exit_code == 2
    assert "embedder folder not found" in result.output
    assert not (tmp_path / "bank").exists()


def test_show_reports_missing_bank(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", str(tmp_path / "nothing")])
    assert result.exit_code == 2
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


@pytest.fixture
def fake_cli_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trex.intuition.cli.SentenceTransformerEmbedder", lambda *args, **kwargs: FakeEmbedder())


def fit_args(paths: list[Path], out: Path, *extra: str) -> list[str]:
    return ["fit", *map(str, paths), "--out", str(out), "--n-clusters", "4", "--backend", "torch", *extra]


def test_fit_refuses_to_replace_a_users_folder_or_file(tmp_path: Path, fake_cli_embedder: None) -> None:
    (tmp_path / "data").mkdir()
    paths = write_tasks(tmp_path / "data")
    folder, file = tmp_path / "my-notes", tmp_path / "notes.txt"
    folder.mkdir()
    (folder / "thesis.tex").write_bytes(b"\x00ten years of work\n")
    file.write_bytes(b"keep me\r\n")
    result = runner.invoke(app, fit_args(paths, folder))
    assert result.exit_code == 2 and "is not an intuition bank written by trex" in result.output
    assert "--overwrite" in result.output
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, fit_args(paths, file, *extra))
        assert result.exit_code == 2 and "exists and is not a folder" in result.output
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]
    assert (folder / "thesis.tex").read_bytes() == b"\x00ten years of work\n"
    assert file.read_bytes() == b"keep me\r\n"


def test_fit_replaces_its_own_bank_and_other_folders_only_with_overwrite(
    tmp_path: Path, fake_cli_embedder: None
) -> None:
    (tmp_path / "data").mkdir()
    paths = write_tasks(tmp_path / "data")
    bank = tmp_path / "bank"
    for _ in range(2):  # the second fit replaces the first one's bank without asking
        result = runner.invoke(app, fit_args(paths, bank))
        assert result.exit_code == 0, result.output
    assert IntuitionBank.load(bank).n_clusters == 4
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "old.txt").write_text("x")
    result = runner.invoke(app, fit_args(paths, folder, "--overwrite"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["centroids.safetensors", "intuition_bank.json"]
