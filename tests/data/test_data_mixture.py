"""Mixture: caps, proportional and temperature counts, determinism, summary table."""

from __future__ import annotations

from collections import Counter

import pytest

from trex.data import DataError, TaskInstance, build_mixture, mixture_summary_text


def _task(name: str, n: int) -> list[TaskInstance]:
    return [TaskInstance(name, f"{name}:{i}", f"q{i}", ["a", "b"], 0) for i in range(n)]


TASKS = {"big": _task("big", 900), "small": _task("small", 100)}


def test_proportional_with_caps_keeps_each_instance_once() -> None:
    mixture = build_mixture(TASKS, caps={"big": 300}, seed=1)
    assert Counter(i.task for i in mixture) == {"big": 300, "small": 100}
    assert len({i.uid for i in mixture}) == 400


def test_temperature_sampling_counts() -> None:
    # shares ∝ n ** (1/T): T=2 gives 30:10 of 1000 -> 750 / 250; small is up-sampled by repetition.
    mixture = build_mixture(TASKS, sampling="temperature", temperature=2.0, seed=0)
    counts = Counter(i.task for i in mixture)
    assert counts == {"big": 750, "small": 250}
    assert len({i.uid for i in mixture if i.task == "small"}) == 100
    uniform = build_mixture(TASKS, sampling="temperature", temperature=1e9, total=10, seed=0)
    assert Counter(i.task for i in uniform) == {"big": 5, "small": 5}


def test_mixture_is_deterministic_and_seeded() -> None:
    def uids(seed: int) -> list[str]:
        return [i.uid for i in build_mixture(TASKS, caps=150, sampling="temperature", seed=seed)]

    assert uids(3) == uids(3)
    assert uids(3) != uids(4)


def test_summary_and_errors() -> None:
    text = mixture_summary_text(build_mixture(TASKS, caps=50), TASKS)
    assert "big" in text and "small" in text and "50.0%" in text
    with pytest.raises(DataError, match="no training instances"):
        build_mixture({"empty": []})
    with pytest.raises(DataError, match="unknown sampling"):
        build_mixture(TASKS, sampling="uniform")  # type: ignore[arg-type]
