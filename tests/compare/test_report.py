"""Which paper row each comparison arm is set beside, and what the report reads from the headline difference."""

from __future__ import annotations

import pytest
from trex_testing import write_comparison_config

from trex import TRexConfig
from trex.compare import load_compare_config
from trex.compare.report import paper_row, reading_section
from trex.compare.stats import Estimate, MethodStats
from trex.config import MoR1EConfig
from trex.methods.lora import LoraMethodConfig
from trex.methods.molora import MoLoRAConfig


@pytest.mark.parametrize(
    ("adapter", "row"),
    [
        (LoraMethodConfig(), "lora"),
        (TRexConfig(), "trex"),
        (TRexConfig(use_intuition=False), "rank1"),
        (TRexConfig(intuition_source="task_category", intuition_mapping=True), "task-category"),
        (MoR1EConfig(), "intuition-rank1"),
        (MoLoRAConfig(use_intuition=True), "intuition-lora"),
        (TRexConfig(factorised_router=True), None),
    ],
)
def test_paper_rows(adapter, row):
    assert paper_row(adapter) == row


@pytest.mark.parametrize(
    ("low", "value", "high", "verdict", "inside", "above"),
    [
        (0.005, 0.02, 0.025, "T-REX is ahead of LoRA-32 here, as in the paper.", "+0.92, +1.29, +1.78", None),
        (-0.03, -0.02, -0.01, "T-REX is behind LoRA-32 here", None, "+0.92, +1.29, +1.78"),
        (-0.012, -0.004, 0.010, "does not show T-REX beating LoRA-32", "+0.92", "+1.29, +1.78"),
    ],
)
def test_reading_says_where_the_papers_claim_falls_against_the_interval(
    tmp_path, low, value, high, verdict, inside, above
):
    config = load_compare_config(write_comparison_config(tmp_path, tmp_path / "out"))
    stats = {"lora": MethodStats(2), "trex": MethodStats(2, diff_average=Estimate(value, low, high))}
    text = "\n".join(reading_section(stats, {"lora": "lora", "trex": "trex"}, config))
    assert verdict in text
    assert (f"The paper's differences {inside} lie inside this interval" in text) == (inside is not None)
    assert (f"The paper's {above} lie above it" in text) == (above is not None)
    assert f"has a half-width of {100 * (high - low) / 2:.1f} points" in text


def test_no_reading_without_a_trex_arm(tmp_path):
    config = load_compare_config(write_comparison_config(tmp_path, tmp_path / "out"))
    stats = {"lora": MethodStats(2), "mor1e": MethodStats(2, diff_average=Estimate(0.0, -0.01, 0.01))}
    assert reading_section(stats, {"lora": "lora", "mor1e": "intuition-rank1"}, config) == []
