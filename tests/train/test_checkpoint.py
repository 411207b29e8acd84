"""Checkpoint folders: trex deletes only the half-written ones it can prove it started, never another program's."""

from __future__ import annotations

from pathlib import Path

import pytest

from trex.train.checkpoint import (
    COMPLETE_MARKER,
    IN_PROGRESS_MARKER,
    begin_checkpoint,
    complete_checkpoints,
    mark_complete,
    remove_incomplete_checkpoints,
)


def test_begin_then_complete_leaves_only_the_complete_marker(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-2"
    begin_checkpoint(folder)
    assert (folder / IN_PROGRESS_MARKER).is_file() and complete_checkpoints(tmp_path) == []
    mark_complete(folder)
    assert sorted(p.name for p in folder.iterdir()) == [COMPLETE_MARKER]
    assert complete_checkpoints(tmp_path) == [folder]


def test_only_trex_started_or_empty_incomplete_checkpoints_are_removed(tmp_path: Path) -> None:
    for step in (2, 10):
        begin_checkpoint(tmp_path / f"checkpoint-{step}")
        mark_complete(tmp_path / f"checkpoint-{step}")
    begin_checkpoint(tmp_path / "checkpoint-12")
    (tmp_path / "checkpoint-12" / "adapter_model.safetensors").write_bytes(b"partial")
    (tmp_path / "checkpoint-14").mkdir()  # killed before its marker: empty, nothing to lose
    removed = remove_incomplete_checkpoints(tmp_path)
    assert sorted(p.name for p in removed) == ["checkpoint-12", "checkpoint-14"]
    assert complete_checkpoints(tmp_path) == [tmp_path / "checkpoint-2", tmp_path / "checkpoint-10"]


@pytest.mark.parametrize("kind", ["folder", "file", "link"])
def test_another_programs_checkpoint_is_refused_and_left_intact(tmp_path: Path, kind: str) -> None:
    run, theirs = tmp_path / "run", tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "model.bin").write_bytes(b"\x00their weights\r\n")
    (theirs / COMPLETE_MARKER).write_text("theirs")  # their own marker, seen through the link
    run.mkdir()
    begin_checkpoint(run / "checkpoint-3")  # trex's own half-written one: kept too, nothing is deleted
    foreign = run / "checkpoint-7"
    if kind == "folder":
        foreign.mkdir()
        (foreign / "model.bin").write_bytes(b"\x00their weights\r\n")
    elif kind == "file":
        foreign.write_bytes(b"\x00their weights\r\n")
    else:
        foreign.symlink_to(theirs)
    with pytest.raises(ValueError, match="may be another program's checkpoint; move it out of"):
        remove_incomplete_checkpoints(run)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-3", "checkpoint-7"]
    data = foreign.read_bytes() if kind == "file" else (foreign / "model.bin").read_bytes()
    assert data == b"\x00their weights\r\n"
    assert sorted(p.name for p in theirs.iterdir()) == [COMPLETE_MARKER, "model.bin"]
