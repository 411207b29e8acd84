"""`trex.io`: atomic writes keep the old file on failure and give new files the permissions `open()` would."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from trex.io import DIR_MODE, FILE_MODE, atomic_write, make_temp_dir, member_file, save_tensors_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_mode_matches_open(tmp_path) -> None:
    (tmp_path / "plain.json").write_text("{}")
    atomic_write(tmp_path / "atomic.json", lambda tmp: tmp.write_text("{}"))
    mode = stat.S_IMODE((tmp_path / "atomic.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")

    def failing(tmp) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_safetensors_written_atomically_get_the_mode_open_gives(tmp_path) -> None:
    """safetensors' save_file replaces the temporary file (mode 0600): the mode must be set after it."""
    (tmp_path / "plain").write_text("")
    save_tensors_atomic({"x": torch.zeros(2)}, tmp_path / "w.safetensors")
    assert _mode(tmp_path / "w.safetensors") == _mode(tmp_path / "plain") == FILE_MODE


def test_temp_dir_gets_the_mode_mkdir_gives(tmp_path) -> None:
    (tmp_path / "plain").mkdir()
    assert _mode(make_temp_dir(tmp_path / "new", ".staging.")) == _mode(tmp_path / "plain") == DIR_MODE


def test_member_file_accepts_files_and_inner_links(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"1234")
    (tmp_path / "link.bin").symlink_to(tmp_path / "sub" / "w.bin")
    assert member_file(tmp_path, "sub/w.bin", 4) == (tmp_path / "sub" / "w.bin").resolve()
    assert member_file(tmp_path, "link.bin", 4) == (tmp_path / "sub" / "w.bin").resolve()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/etc/passwd", "is an absolute path"),
        ("../outside.bin", "uses '..'"),
        ("sub/../../outside.bin", "uses '..'"),
        ("escape.bin", "outside the folder"),
        ("escape_dir/outside.bin", "outside the folder"),
        ("missing.bin", "does not exist"),
        ("sub", "is not a regular file"),
        ("fifo", "is not a regular file"),
        ("big.bin", "has 11 bytes, more than the 10 allowed"),
        ("", "is not a non-empty relative path"),
        ("nul\0byte", "cannot be resolved"),
    ],
)
def test_member_file_refuses_paths_that_leave_the_folder_or_cannot_be_read_safely(tmp_path, name, message) -> None:
    folder = tmp_path / "adapter"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "outside.bin").write_bytes(b"secret")
    (folder / "escape.bin").symlink_to(tmp_path / "outside.bin")
    (folder / "escape_dir").symlink_to(tmp_path)
    (folder / "big.bin").write_bytes(b"x" * 11)
    os.mkfifo(folder / "fifo")
    with pytest.raises(ValueError) as info:
        member_file(folder, name, max_bytes=10)
    text = str(info.value)
    assert message in text and str(folder) in text and "\n" not in text
