"""``TRexModel``: a transformers causal LM with T-REX layers, intuition as an explicit input, peft-style files.

The life cycle (injection, freezing, the per-instance prior, ``disable_adapter``, gradient checkpointing,
``generate``, checksummed save/load) is ``trex.methods.base.RoutedAdapterModel``'s; this module adds T-REX's layer
and the renaming of weight files written before routers became modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trex.config import TRexConfig
from trex.layer import TRexLinear
from trex.methods.base import ADAPTER_PREFIX, INTUITION_DIR, RoutedAdapterModel, find_target_modules

if TYPE_CHECKING:
    from trex.intuition import IntuitionBank

__all__ = ["ADAPTER_PREFIX", "INTUITION_DIR", "TRexModel", "find_target_modules", "get_trex_model"]

_LEGACY_ROUTER_KEYS = {
    "trex_router": "trex_router.weight",
    "trex_intuition_gate": "trex_router.intuition_gate",
    "trex_output_gate": "trex_router.output_gate",
    "trex_intuition_scale": "trex_router.prior_scale",
    "trex_intuition_map": "trex_router.prior_map",
}
"""trex 0.1.0 kept the router's parameters flat on the layer; they now belong to the router module."""


class TRexModel(RoutedAdapterModel):
    """A causal LM whose linear layers carry T-REX adapters (``TRexConfig``; also MoR1E, the diagonal layout).

    Intuition (one row per instance, ``(batch, n_clusters)``) is an argument of ``forward`` and ``generate``, or
    computed from ``intuition_text`` by the attached intuition bank.
    """

    config_class = TRexConfig

    @property
    def trex_config(self) -> TRexConfig:
        return self.adapter_config

    def make_layer(self, base_layer: nn.Linear) -> TRexLinear:
        return TRexLinear(base_layer, self.adapter_config, self.routing)

    def _legacy_keys(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        expected = set(self.adapter_state_dict())
        renamed = {}
        for key, value in tensors.items():
            module, _, name = key.rpartition(".")
            new = f"{module}.{_LEGACY_ROUTER_KEYS[name]}" if name in _LEGACY_ROUTER_KEYS else key
            if name == "trex_intuition_scale" and new not in expected:
                continue  # 0.1.0 created β even without intuition, where it never acted
            renamed[new] = value
        return renamed


def get_trex_model(model: nn.Module, config: TRexConfig, intuition_bank: IntuitionBank | None = None) -> TRexModel:
    """Inject T-REX layers into ``model`` (in place) and freeze everything else; works on the meta device."""
    return TRexModel(model, config, intuition_bank=intuition_bank)
