"""The efficiency table's FLOPs formula against torch's FLOP counter on a real layer of every method, and its
training costs read from a run's metrics log."""

from __future__ import annotations

import json

import pytest
from methods.cases import PARAMS, Case

from trex.compare.efficiency import adapter_flops, model_config, training_cost
from trex.pretrained import TINY_MODEL


@pytest.mark.parametrize("case", PARAMS)
def test_analytic_flops_equal_the_counted_ones(case: Case):
    """Per token; a learned map of the prior is per instance (counted over 16 tokens here), the formula leaves it."""
    config = case.config()
    flops = adapter_flops(config, model_config(TINY_MODEL), tokens=16)
    per_instance = 2 * config.n_experts * config.prior_width if getattr(config, "intuition_mapping", False) else 0
    assert flops.layer_counted == flops.layer_analytic + per_instance // 16
    assert flops.layer_analytic > 0
    assert flops.per_token > 0 and flops.base_per_token > flops.per_token


def test_training_cost_reads_medians_and_skips_a_resume(tmp_path):
    """Wall s/step from train_runtime differences (a drop marks a new sitting, never a step); CPU s/step and load
    are the logged values' medians; runs logged before those fields existed give None for them."""
    rows = [
        {"step": 5, "train_runtime": 50.0, "tokens_per_s": 90.0, "cpu_s_per_step": 9.0, "load_1m": 1.0},
        {"step": 10, "train_runtime": 100.0, "tokens_per_s": 100.0, "cpu_s_per_step": 10.0, "load_1m": 2.0},
        {"step": 15, "train_runtime": 20.0, "tokens_per_s": 80.0, "cpu_s_per_step": 11.0, "load_1m": 6.0},  # resumed
        {"step": 20, "train_runtime": 80.0, "tokens_per_s": 70.0, "cpu_s_per_step": 12.0, "peak_rss_mb": 700.0},
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cost = training_cost(metrics)
    assert cost.step_s == pytest.approx((10.0 + 12.0) / 2)  # (100-50)/5 and (80-20)/5; the drop 100 -> 20 skipped
    assert cost.tokens_per_s == pytest.approx(85.0)
    assert cost.cpu_step_s == pytest.approx(10.5)
    assert cost.load_1m == pytest.approx(2.0)
    assert cost.peak_rss_mb == 700.0
    metrics.write_text(json.dumps({"step": 5, "train_runtime": 5.0, "tokens_per_s": 1.0}) + "\n")
    old = training_cost(metrics)
    assert old.cpu_step_s is None and old.load_1m is None and old.step_s is None
