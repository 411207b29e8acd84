"""``TRexLinear``: a frozen ``nn.Linear`` plus a routed mixture of rank-one experts."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trex.config import TRexConfig
from trex.functional import broadcast_intuition, clean_routing, mix_rank_one, paper_routing, routing_matrix
from trex.routing import RoutingContext


class TRexLinear(nn.Module):
    """A frozen linear layer with a T-REX adapter::

        y = W0 x + B · z,    z_j = Σ_i (A x)_i · G_ij(x, s)

        x: (..., d_in)          W0 = base_layer.weight: (d_out, d_in), frozen
        A = trex_A: (r_a, d_in)  Kaiming-uniform     B = trex_B: (d_out, r_b), zero (so y = W0 x at init)
        R = trex_router: (K, d_in), zero             cell k of G is (A-row k // r_b, B-column k % r_b)
        s: (batch, n_clusters) intuition, one row per instance, broadcast over the tokens of that instance
        G: (..., r_a, r_b) per token; on the diagonal (v1 MoR1E) G is diagonal and K = r_a = r_b

    G comes from the router logits ``R x`` and ``s`` by the config's preset (see ``TRexConfig``). A and R read x
    in one matmul; every scalar gate is folded into the K-wide routing vector, never the d_out-wide output.
    ``routing_weights`` returns the effective G, so ``layer(x) == base_layer(x) + ((A x)[..., :, None] * G).sum(-2)
    @ B.T`` holds exactly.
    """

    def __init__(self, base_layer: nn.Linear, config: TRexConfig, routing: RoutingContext) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.config = config
        self.routing = routing
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        weight = base_layer.weight
        factory = {"device": weight.device, "dtype": weight.dtype if weight.dtype.is_floating_point else None}
        n_experts, n_clusters = config.n_experts, config.intuition_width
        self.trex_A = nn.Parameter(torch.empty(config.r_a, self.in_features, **factory))
        self.trex_B = nn.Parameter(torch.zeros(self.out_features, config.r_b, **factory))
        self.trex_router = nn.Parameter(torch.zeros(n_experts, self.in_features, **factory))
        if config.preset == "paper":
            self.trex_intuition_gate = nn.Parameter(torch.zeros(1, **factory))
            self.trex_output_gate = nn.Parameter(torch.zeros(1, **factory))
        else:
            self.trex_intuition_scale = nn.Parameter(torch.full((1,), config.intuition_scale_init, **factory))
        self.trex_intuition_map = (
            nn.Parameter(torch.empty(n_experts, n_clusters, **factory)) if config.intuition_mapping else None
        )
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.reset_trex_parameters()

    def reset_trex_parameters(self) -> None:
        """A as nn.Linear's default (Kaiming-uniform, a=√5), B and router zero: the adapter starts as a no-op."""
        nn.init.kaiming_uniform_(self.trex_A, a=math.sqrt(5))
        nn.init.zeros_(self.trex_B)
        nn.init.zeros_(self.trex_router)
        if self.trex_intuition_map is not None:
            nn.init.kaiming_uniform_(self.trex_intuition_map, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.routing.disabled:
            return result
        intuition = self._intuition(self.routing.intuition, x)
        x_adapter = self.dropout(x.to(self.trex_A.dtype))
        projected = F.linear(x_adapter, torch.cat([self.trex_A, self.trex_router]))
        ax, logits = projected.split([self.config.r_a, self.config.n_experts], dim=-1)
        mixed = mix_rank_one(ax, self._route(logits, intuition), self.config.r_b, self.config.mode == "diagonal")
        return result + F.linear(mixed, self.trex_B).to(result.dtype)

    def routing_weights(self, x: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor:
        """The effective mixing matrix G, shape (*x.shape[:-1], r_a, r_b), with every gate and scale folded in."""
        logits = F.linear(x.to(self.trex_router.dtype), self.trex_router)
        g = self._route(logits, self._intuition(intuition, x))
        return routing_matrix(g, self.config.r_a, self.config.r_b, self.config.mode == "diagonal")

    def router_probabilities(self, x: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor:
        """The token router's distribution over the K expert cells (clean preset: with the intuition prior).

        For routing analytics (entropy, cell usage); the paper preset mixes intuition in after this softmax.
        """
        logits = F.linear(x.to(self.trex_router.dtype), self.trex_router)
        intuition = self._intuition(intuition, x)
        if self.config.preset == "clean" and intuition is not None:
            logits = logits + self.trex_intuition_scale * intuition
        return torch.softmax(logits, dim=-1)

    def _route(self, logits: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor:
        config = self.config
        if config.preset == "paper":
            return paper_routing(
                logits,
                intuition,
                self.trex_intuition_gate,
                self.trex_output_gate,
                token_coefficient=config.token_coefficient,
                intuition_coefficient=config.intuition_coefficient,
                sharpness=config.gate_sharpness,
            )
        return clean_routing(logits, intuition, self.trex_intuition_scale, scale=config.alpha / config.r_a)

    def _intuition(self, intuition: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """Check the per-instance intuition against x, map it to experts and view it for broadcasting."""
        if not self.config.use_intuition:
            return None
        if intuition is None:
            raise RuntimeError(
                "this T-REX layer routes with intuition, but none was given: pass intuition=Tensor[batch, "
                f"{self.config.intuition_width}] (or intuition_text=[...]) to TRexModel.forward/generate"
            )
        if intuition.dim() != 2 or intuition.shape[-1] != self.config.intuition_width:
            raise ValueError(
                f"intuition must have shape (batch, {self.config.intuition_width}), got {tuple(intuition.shape)}"
            )
        batch = x.shape[0] if x.dim() >= 2 else 1
        if intuition.shape[0] != batch:
            raise ValueError(
                f"intuition has {intuition.shape[0]} rows but the layer input has batch size {batch}; "
                "give one intuition row per instance"
            )
        intuition = intuition.to(self.trex_router.dtype)
        if self.trex_intuition_map is not None:
            intuition = F.linear(intuition, self.trex_intuition_map)
        return broadcast_intuition(intuition, x) if x.dim() >= 2 else intuition[0]

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, r_a={c.r_a}, r_b={c.r_b}, "
            f"mode={c.mode}, preset={c.preset}, experts={c.n_experts}"
        )
