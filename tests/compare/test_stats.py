"""The bootstrap against computations that do not share its code: exact cases and the normal approximation."""

from __future__ import annotations

import numpy as np
import pytest

from trex.compare.stats import bootstrap


def test_constant_answers_give_a_zero_width_interval():
    stats = bootstrap({"lora": {"copa": np.ones((2, 50))}, "trex": {"copa": np.zeros((3, 50))}}, draws=200)
    lora = stats["lora"].tasks["copa"]
    assert (lora.low, lora.high) == pytest.approx((1.0, 1.0), abs=1e-12)
    diff = stats["trex"].diff_average
    assert (diff.value, diff.low, diff.high) == pytest.approx((-1.0, -1.0, -1.0), abs=1e-12) and diff.excludes_zero


def test_identical_methods_differ_by_exactly_zero_in_every_draw():
    rng = np.random.default_rng(1)
    answers = {"piqa": rng.random((1, 200)) < 0.6, "rte": rng.random((1, 150)) < 0.5}
    stats = bootstrap({"lora": answers, "copy": dict(answers)}, draws=500)
    assert stats["copy"].diff_average.low == stats["copy"].diff_average.high == 0.0
    assert not stats["copy"].diff_average.excludes_zero
    assert stats["copy"].average.high - stats["copy"].average.low > 0.02  # each alone is uncertain


def test_one_seed_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(2)
    x = (rng.random((1, 400)) < 0.5).astype(float)
    est = bootstrap({"lora": {"boolq": x}}, draws=4000)
    estimate = est["lora"].tasks["boolq"]
    p = x.mean()
    assert estimate.value == p
    assert estimate.half_width == pytest.approx(1.96 * np.sqrt(p * (1 - p) / 400), rel=0.1)


def test_paired_difference_matches_the_normal_approximation_of_per_instance_differences():
    rng = np.random.default_rng(3)
    ref = rng.random(300) < 0.55
    flips = rng.random(300) < 0.15
    other = np.where(flips, ~ref, ref)
    stats = bootstrap({"lora": {"wic": ref[None].astype(float)}, "x": {"wic": other[None].astype(float)}}, draws=4000)
    d = other.astype(float) - ref.astype(float)
    diff = stats["x"].diff_tasks["wic"]
    assert diff.value == pytest.approx(d.mean())
    assert diff.half_width == pytest.approx(1.96 * d.std() / np.sqrt(300), rel=0.1)


def test_paired_interval_is_narrower_than_unpaired_when_methods_are_correlated():
    rng = np.random.default_rng(4)
    # what the same instances do to two trained models: mostly easy or hard for both, a few flips per run
    shared = rng.random(200) < 0.5
    ref = np.where(rng.random((2, 200)) < 0.05, ~shared, shared)
    other = np.where(rng.random((2, 200)) < 0.1, ~shared, shared)
    correct = {"lora": {"siqa": ref.astype(float)}, "x": {"siqa": other.astype(float)}}
    paired = bootstrap(correct, draws=2000)["x"].diff_average
    # unpaired: each method resampled by its own generator, so the instance draws are independent
    a = bootstrap({"lora": correct["lora"]}, draws=2000, seed=10)["lora"].average
    b = bootstrap({"x": correct["x"]}, draws=2000, seed=11)["x"].average
    unpaired_half = np.hypot(a.half_width, b.half_width)
    assert paired.half_width < 0.6 * unpaired_half


def test_seeds_add_their_spread_and_averages_cover_shared_tasks_only():
    # two seeds that disagree completely on every instance: the seed resample alone spreads the mean
    seeds = np.array([np.ones(100), np.zeros(100)])
    stats = bootstrap({"lora": {"copa": seeds, "rte": np.ones((2, 10))}, "x": {"copa": seeds}}, draws=2000)
    assert stats["lora"].tasks["copa"].value == 0.5
    copa = stats["lora"].tasks["copa"]
    assert (copa.low, copa.high) == pytest.approx((0.0, 1.0), abs=1e-12)
    assert stats["lora"].average.value == 0.5  # rte is not held by x, so no average includes it
    assert set(stats["x"].diff_tasks) == {"copa"}


def test_same_seed_same_numbers():
    x = {"lora": {"copa": np.eye(3)[:, :3].repeat(10, axis=1)}, "x": {"copa": np.ones((3, 30))}}
    assert bootstrap(x, seed=5)["x"].diff_average == bootstrap(x, seed=5)["x"].diff_average


def test_shipped_comparison_configs_load():
    from pathlib import Path

    from trex.compare import load_compare_config

    for path in sorted((Path(__file__).resolve().parents[2] / "configs" / "compare").glob("*.yaml")):
        config = load_compare_config(path)
        assert "lora" in config.methods and "trex" in config.methods, path
