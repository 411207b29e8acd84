"""The shipped subset is what scripts/make_data_subset.py makes from the staged suite (deterministic)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from trex.data import SHIPPED_DATA

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_data_subset.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_data_subset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_subset_regenerates_byte_identical(shared_data: Path, tmp_path: Path) -> None:
    tasks = ["copa", "anli", "mmlu", "alpaca", "bbh_snarks"]
    _script().make_subset(shared_data, tmp_path / "out", n_train=200, n_eval=100, seed=0, tasks=tasks)
    for name in tasks:
        for made in sorted((tmp_path / "out" / name).iterdir()):
            assert made.read_bytes() == (SHIPPED_DATA / name / made.name).read_bytes(), made


def test_subset_carries_licence_notes_and_stays_small() -> None:
    readme = (SHIPPED_DATA / "README.md").read_text()
    index = json.loads((SHIPPED_DATA / "index.json").read_text())
    for source in index["sources"]:
        assert f"`{source}`" in readme
    assert "CC-BY-NC-4.0" in readme
    size = sum(p.stat().st_size for p in SHIPPED_DATA.rglob("*") if p.is_file())
    assert size < 6_000_000
