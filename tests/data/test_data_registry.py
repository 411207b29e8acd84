"""Registry: task lists, name errors, root resolution, every task loads, and no eval instance is trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trex.data import BBH_TASKS, REGISTRY, SHIPPED_DATA, DataError, list_tasks, load_task, resolve_data_root

PAPER_TABLE_1 = [
    "multirc", "mmlu", "boolq", "wic", "winogrande", "wsc", "anli", "piqa", "siqa", "rte", "copa", "openbookqa",
    "commonsenseqa", "hellaswag",
]  # fmt: skip


def test_task_lists_match_the_paper() -> None:
    assert list_tasks("eval") == PAPER_TABLE_1
    assert len(list_tasks("bbh")) == 27 == len(BBH_TASKS)
    train = set(list_tasks("train"))
    assert {"arc_easy", "arc_challenge", "record", "alpaca"} <= train
    assert not train & set(list_tasks("bbh"))
    assert set(list_tasks()) == set(PAPER_TABLE_1) | train | set(list_tasks("bbh"))


def test_unknown_task_suggests_the_closest_name() -> None:
    with pytest.raises(DataError, match=r"unknown task 'hellaswg'.*did you mean 'hellaswag'"):
        load_task("hellaswg", "eval")


def test_missing_split_and_bad_limit_are_errors() -> None:
    with pytest.raises(DataError, match="has no eval split"):
        load_task("alpaca", "eval")
    with pytest.raises(DataError, match="has no train split"):
        load_task("bbh_navigate", "train")
    with pytest.raises(DataError, match="unknown split"):
        load_task("copa", "test")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="limit"):
        load_task("copa", "eval", limit=0)


def test_data_root_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_data_root() == SHIPPED_DATA
    monkeypatch.setenv("TREX_DATA", str(tmp_path))
    assert resolve_data_root() == tmp_path
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    assert resolve_data_root(explicit) == explicit
    with pytest.raises(DataError, match="not a directory"):
        resolve_data_root(tmp_path / "nope")


def test_missing_staged_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*superglue/copa/val\.jsonl"):
        load_task("copa", "eval", tmp_path)


def test_empty_task_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "superglue" / "copa").mkdir(parents=True)
    (tmp_path / "superglue" / "copa" / "val.jsonl").write_text("\n")
    with pytest.raises(DataError, match="'copa' split 'eval' is empty"):
        load_task("copa", "eval", tmp_path)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_task_loads_from_the_shipped_subset(name: str) -> None:
    spec = REGISTRY[name]
    for split in ("train", "eval"):
        if not spec.sources[split]:
            continue
        instances = load_task(name, split)
        assert 0 < len(instances) <= (200 if split == "train" else 100)
        assert all(i.task == name for i in instances)
        assert len({i.uid for i in instances}) == len(instances)
        assert load_task(name, split, limit=3) == instances[:3]


def test_shipped_index_matches_files() -> None:
    index = json.loads((SHIPPED_DATA / "index.json").read_text())
    assert set(index["tasks"]) == set(REGISTRY)
    for name, entry in index["tasks"].items():
        for split in ("train", "eval"):
            if split in entry:
                lines = (SHIPPED_DATA / name / f"{split}.jsonl").read_text().splitlines()
                assert len(lines) == entry[split]


def _assert_no_leak(root: Path) -> None:
    """No instance of any evaluation split may appear, by content hash, in any training split."""
    eval_hashes: dict[str, str] = {}
    for name, spec in REGISTRY.items():
        if spec.eval:
            eval_hashes |= {i.content_hash(): i.uid for i in load_task(name, "eval", root)}
    leaks = [
        (i.uid, eval_hashes[i.content_hash()])
        for name in list_tasks("train")
        for i in load_task(name, "train", root)
        if i.content_hash() in eval_hashes
    ]
    assert not leaks, f"training instances that are also evaluation instances: {leaks[:10]}"


def test_no_eval_instance_in_any_train_split_of_the_shipped_subset() -> None:
    _assert_no_leak(SHIPPED_DATA)


def test_no_eval_instance_in_any_train_split_of_the_staged_suite(shared_data: Path) -> None:
    _assert_no_leak(shared_data)


def test_staged_counts_and_split_choices(shared_data: Path) -> None:
    """Counts from ../shared/data/MANIFEST.md, after the documented splits and duplicate removals."""
    expected = {
        ("multirc", "eval"): 4848, ("multirc", "train"): 27243, ("anli", "train"): 4400, ("anli", "eval"): 1000,
        ("siqa", "train"): 2224, ("siqa", "eval"): 1954, ("mmlu", "train"): 280, ("mmlu", "eval"): 14042,
        ("boolq", "train"): 9491, ("openbookqa", "train"): 4957, ("arc_easy", "train"): 2249,
        ("piqa", "train"): 100, ("hellaswag", "eval"): 10042, ("record", "train"): 64 * 1 + 0,
    }  # fmt: skip
    for (name, split), count in expected.items():
        if name == "record":
            assert len(load_task(name, split, shared_data)) >= count  # several queries per passage
        else:
            assert len(load_task(name, split, shared_data)) == count, (name, split)
    anli_train = {i.uid.split(":")[0] for i in load_task("anli", "train", shared_data)}
    assert anli_train == {"anli/R2/dev.jsonl", "anli/R2/test.jsonl", "anli/R3/dev.jsonl", "anli/R3/test.jsonl"}
