"""`trex.io`: atomic writes keep the old file on failure and give new files the permissions `open()` would."""

from __future__ import annotations

import stat

import pytest

from trex.io import atomic_write


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
