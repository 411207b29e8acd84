"""The efficiency table's FLOPs formula against torch's FLOP counter on a real layer of every method."""

from __future__ import annotations

import pytest
from methods.cases import PARAMS, Case

from trex.compare.efficiency import adapter_flops, model_config
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
