"""Which paper row each comparison arm is set beside: options the papers never ran get none."""

from __future__ import annotations

import pytest

from trex import TRexConfig
from trex.compare.report import paper_row
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
