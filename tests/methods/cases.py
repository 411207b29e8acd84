"""The method matrix of the tests: every registered method and every ablation, on tiny shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn
from trex_testing import ADAPTER_MARKERS, VOCAB, randomize_adapter, tiny_llama

from trex.methods import METHODS, build_adapter_model, get_method


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    options: dict[str, Any]

    def config(self) -> Any:
        return get_method(self.method).config_class(**self.options)


CASES = [
    Case("trex-paper", "trex", dict(r_a=2, r_b=4)),
    Case("trex-clean", "trex", dict(r_a=2, r_b=4, preset="clean")),
    Case("trex-no-intuition", "trex", dict(r_a=2, r_b=4, use_intuition=False)),
    Case("trex-intuition-only", "trex", dict(r_a=2, r_b=4, use_router=False)),
    Case("trex-factorised", "trex", dict(r_a=2, r_b=4, factorised_router=True)),
    Case("trex-task-category", "trex", dict(r_a=2, r_b=4, intuition_source="task_category", intuition_mapping=True)),
    Case("mor1e", "mor1e", dict(r_a=5, r_b=5, token_coefficient=5.0)),
    Case("lora", "lora", dict(r=4, alpha=8.0)),
    Case("molora", "molora", dict(n_experts=4, r=2)),
    Case("molora-intuition", "molora", dict(n_experts=4, r=2, use_intuition=True)),
    Case("sira", "sira", dict(n_experts=4, r=2, top_k=2)),
]
PARAMS = [pytest.param(case, id=case.name) for case in CASES]

assert {case.method for case in CASES} == set(METHODS), "every registered method must be in the matrix"


def is_adapter_parameter(name: str) -> bool:
    return any(marker in name for marker in ADAPTER_MARKERS)


def build(case: Case, seed: int = 0, randomize: bool = True, base: nn.Module | None = None) -> Any:
    model = build_adapter_model(tiny_llama(seed) if base is None else base, case.config())
    if randomize:
        randomize_adapter(model)
    return model


def token_batch(n: int = 3, length: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def instance_kwargs(model: Any, n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """``intuition=`` rows for the methods that take a per-instance prior, nothing for the others."""
    if not model.needs_instance_inputs:
        return {}
    width = model.adapter_config.prior_width
    rows = torch.rand(n, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return {"intuition": rows.to(dtype)}
