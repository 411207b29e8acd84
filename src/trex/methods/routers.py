"""Routers: small modules that own their parameters and turn router logits (+ a per-instance prior) into weights.

Every routed adapter layer computes its router logits in the same matmul as its down-projection (the router's
``weight`` is concatenated to A), then hands them to its router. A router returns the flat routing vector ``g``
(``..., K``) that the layer mixes its experts with; everything else about routing (gates, scales, the prior, top-k,
capacity, expert dropout, auxiliary losses) lives here, one class per rule, instead of string branches spread over
the layers, the metrics and the config.

================================  ===========================================================================
``GatedPriorRouter``              T-REX ``paper`` preset (the authors' code): ``σ(k·h)·[σ(k·g)·c_tok·softmax(Rx)
                                  + (1-σ(k·g))·c_int·s]``; without a token router: ``σ(k·h)·c_int·s``
``SoftmaxRouter``                 ``scale·softmax(Rx + β·s)``: T-REX ``clean`` preset (scale = alpha/r_a·K), MoLoRA
                                  (scale 1, Zadouri et al. 2023), and MoLoRA with an intuition prior
``TopKRouter``                    SiRA (Zhu et al. 2023): top-k of softmax(Rx), renormalised, with an expert capacity
                                  per batch and expert dropout on the gate, both during training only
================================  ===========================================================================

A router over an ``r_a x r_b`` grid of experts can be *factorised* (``grid=(r_a, r_b)``): its weight gives r_a row
logits and r_b column logits instead of one logit per cell, and a cell's logit is the sum of its row's and its
column's, so ``softmax`` over the cells is the outer product of a row and a column softmax. The router then holds
``(r_a + r_b) x d_in`` weights instead of ``r_a r_b x d_in`` (12 vs 32 rows for 4 x 8); every rule above applies
unchanged to the expanded cell logits.

Auxiliary losses (``load_balance_loss``, ``router_z_loss`` weights) are available to every router; a router adds
them to the shared ``RoutingContext`` while training, and the adapter model hands their sum to the trainer.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from trex.routing import RoutingContext


class Router(nn.Module):
    """Base: a token router ``weight`` (K x d_in, or none), an optional learned map of the prior, aux losses.

    Attributes:
        n_experts: K, the length of the routing vector.
        weight: The token router (its logits are computed by the layer, fused with A), or None.
        prior_map: (K x prior_width) map from the per-instance prior to the experts, or None (identity).
    """

    def __init__(
        self,
        d_in: int,
        n_experts: int,
        prior_width: int | None,
        *,
        token_router: bool = True,
        map_prior: bool = False,
        load_balance_loss: float = 0.0,
        router_z_loss: float = 0.0,
        context: RoutingContext | None = None,
        init_weight: Literal["zeros", "normal"] = "zeros",
        grid: tuple[int, int] | None = None,
        **factory,
    ) -> None:
        super().__init__()
        if grid is not None and grid[0] * grid[1] != n_experts:
            raise ValueError(f"a factorised router's grid {grid[0]} x {grid[1]} must have n_experts={n_experts} cells")
        self.n_experts, self.prior_width, self.grid = n_experts, prior_width, grid
        rows = n_experts if grid is None else sum(grid)
        self.weight = nn.Parameter(torch.empty(rows, d_in, **factory)) if token_router else None
        self.prior_map = (
            nn.Parameter(torch.empty(n_experts, prior_width, **factory))
            if map_prior and prior_width is not None
            else None
        )
        self.load_balance_loss, self.router_z_loss = load_balance_loss, router_z_loss
        self.context = context
        self.init_weight = init_weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            if self.init_weight == "zeros":
                nn.init.zeros_(self.weight)
            else:
                nn.init.normal_(self.weight, std=0.02)
        if self.prior_map is not None:
            nn.init.kaiming_uniform_(self.prior_map, a=math.sqrt(5))

    @property
    def n_logits(self) -> int:
        """Rows this router adds to the layer's fused projection."""
        return 0 if self.weight is None else self.weight.shape[0]

    def cell_logits(self, logits: torch.Tensor | None) -> torch.Tensor | None:
        """The K per-expert logits: the layer's router logits, or a factorised router's row + column sums."""
        return logits if logits is None or self.grid is None else expand_grid_logits(logits, self.grid)

    def mapped_prior(self, prior: torch.Tensor | None) -> torch.Tensor | None:
        """The prior on the K experts (after the learned map, if any)."""
        if prior is None or self.prior_map is None:
            return prior
        return F.linear(prior, self.prior_map)

    def probabilities(self, logits: torch.Tensor | None, prior: torch.Tensor | None) -> torch.Tensor:
        """The router's distribution over the K experts, for routing statistics (entropy, usage)."""
        raise NotImplementedError

    def gate_values(self) -> dict[str, float]:
        """Scalar gates worth logging (none by default)."""
        return {}

    def record_losses(self, logits: torch.Tensor | None, probs: torch.Tensor, assigned: torch.Tensor) -> None:
        """Add the weighted load-balancing and z losses of this call to the context (training only).

        Load balancing is Switch Transformer's ``K · Σ_e f_e · P_e`` (``f_e`` = share of routing assignments to
        expert e, ``P_e`` = mean router probability of e); the z-loss is ST-MoE's ``mean(logsumexp(logits)²)``.
        """
        if not self.training or self.context is None:
            return
        if self.load_balance_loss > 0:
            flat_p = self.real_rows(probs)
            flat_a = self.real_rows(assigned).to(flat_p.dtype)
            share = flat_a.sum(0) / flat_a.sum().clamp_min(1)
            balance = self.n_experts * (share * flat_p.mean(0)).sum()
            self.context.add_loss("load_balance", self.load_balance_loss * balance)
        if self.router_z_loss > 0 and logits is not None:
            z = torch.logsumexp(self.real_rows(logits).float(), dim=-1).pow(2).mean()
            self.context.add_loss("router_z", self.router_z_loss * z)

    def real_token_mask(self, per_token: torch.Tensor) -> torch.Tensor | None:
        """The context's real-token mask flattened over the tokens of ``per_token`` (..., K); None: all real.

        Applies only when its (batch, seq) shape is the tokens' shape (a training forward over padded batches)."""
        mask = None if self.context is None else self.context.token_mask
        if mask is None or mask.shape != per_token.shape[:-1]:
            return None
        return mask.reshape(-1)

    def real_rows(self, per_token: torch.Tensor) -> torch.Tensor:
        """``per_token`` (..., K) as (real tokens, K): padding rows left out."""
        flat = per_token.reshape(-1, per_token.shape[-1])
        mask = self.real_token_mask(per_token)
        return flat if mask is None else flat[mask]


class GatedPriorRouter(Router):
    """The authors' rule (T-REX ``paper`` preset); every scalar folded into the K-wide vector.

    Intuition is mixed in *after* the softmax (anchors-mission §1.3), so G is neither normalised nor non-negative.
    The output gate ``σ(k·h)`` sits here, on the routing vector, rather than on the d_out-wide adapter output: a
    trainable scalar times a wide tensor makes autograd keep that tensor.
    """

    def __init__(
        self,
        d_in: int,
        n_experts: int,
        prior_width: int | None,
        *,
        token_coefficient: float,
        intuition_coefficient: float,
        sharpness: float,
        **kwargs,
    ) -> None:
        factory = {k: kwargs[k] for k in ("device", "dtype") if k in kwargs}
        super().__init__(d_in, n_experts, prior_width, **kwargs)
        self.token_coefficient, self.intuition_coefficient, self.sharpness = (
            token_coefficient, intuition_coefficient, sharpness,
        )  # fmt: skip
        # the gate exists with the token router even without a prior: it then scales the token part (as the
        # authors' code, whose token-only ablation keeps it)
        self.intuition_gate = nn.Parameter(torch.zeros(1, **factory)) if self.weight is not None else None
        self.output_gate = nn.Parameter(torch.zeros(1, **factory))

    def forward(self, logits: torch.Tensor | None, prior: torch.Tensor | None) -> torch.Tensor:
        out = torch.sigmoid(self.sharpness * self.output_gate)
        prior = self.mapped_prior(prior)
        if logits is None:  # intuition only: no token router
            return (out * self.intuition_coefficient) * prior
        logits = self.cell_logits(logits)
        probs = torch.softmax(logits, dim=-1)
        self._record(logits, probs)
        w = torch.sigmoid(self.sharpness * self.intuition_gate)
        g = (out * w * self.token_coefficient) * probs
        if prior is not None:
            g = g + (out * (1.0 - w) * self.intuition_coefficient) * prior
        return g

    def _record(self, logits: torch.Tensor, probs: torch.Tensor) -> None:
        if self.training and (self.load_balance_loss > 0 or self.router_z_loss > 0):
            self.record_losses(logits, probs, F.one_hot(probs.argmax(-1), self.n_experts))

    def probabilities(self, logits: torch.Tensor | None, prior: torch.Tensor | None) -> torch.Tensor:
        if logits is None:
            prior = self.mapped_prior(prior)
            return torch.softmax(prior, dim=-1)
        return torch.softmax(self.cell_logits(logits), dim=-1)

    def gate_values(self) -> dict[str, float]:
        values = {"output_gate": torch.sigmoid(self.sharpness * _whole(self.output_gate)).item()}
        if self.intuition_gate is not None:
            values["token_share"] = torch.sigmoid(self.sharpness * _whole(self.intuition_gate)).item()
        return values


def expand_grid_logits(logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., r_a + r_b) row and column logits -> (..., r_a r_b) cell logits; cell k = (row k // r_b, column k % r_b)
    gets row + column, so the softmax over cells is the product of the rows' and the columns' softmax."""
    rows, cols = logits.split(grid, dim=-1)
    return (rows.unsqueeze(-1) + cols.unsqueeze(-2)).flatten(-2)


def _whole(param: torch.Tensor) -> torch.Tensor:
    """The whole parameter, gathered from its shards under FSDP (a collective: every rank must ask)."""
    from torch.distributed.tensor import DTensor

    return param.full_tensor() if isinstance(param, DTensor) else param


class SoftmaxRouter(Router):
    """``scale · softmax(Rx + β·s)``: a dense soft router, with the per-instance prior ``s`` on its logits.

    T-REX ``clean`` preset uses ``scale = alpha / r_a · K`` (so ``K·p`` has mean 1 per cell, as LoRA's alpha/r);
    MoLoRA uses ``scale = 1`` (a convex combination of the experts, each scaled by its own alpha/r).
    """

    def __init__(
        self, d_in: int, n_experts: int, prior_width: int | None, *, scale: float, prior_scale_init: float, **kwargs
    ) -> None:
        factory = {k: kwargs[k] for k in ("device", "dtype") if k in kwargs}
        super().__init__(d_in, n_experts, prior_width, **kwargs)
        self.scale = scale
        self.prior_scale = (
            nn.Parameter(torch.full((1,), prior_scale_init, **factory)) if prior_width is not None else None
        )

    def _logits(self, logits: torch.Tensor | None, prior: torch.Tensor | None) -> torch.Tensor:
        """Cell logits (already expanded from a factorised router's) plus the weighted prior."""
        prior = self.mapped_prior(prior)
        if prior is None:
            return logits
        weighted = self.prior_scale * prior
        return weighted if logits is None else logits + weighted

    def forward(self, logits: torch.Tensor | None, prior: torch.Tensor | None) -> torch.Tensor:
        logits = self.cell_logits(logits)
        probs = torch.softmax(self._logits(logits, prior), dim=-1)
        if self.training and (self.load_balance_loss > 0 or self.router_z_loss > 0):
            self.record_losses(logits, probs, F.one_hot(probs.argmax(-1), self.n_experts))
        return self.scale * probs

    def probabilities(self, logits: torch.Tensor | None, prior: torch.Tensor | None) -> torch.Tensor:
        return torch.softmax(self._logits(self.cell_logits(logits), prior), dim=-1)


class TopKRouter(Router):
    """SiRA's sparse router: the top ``k`` of ``softmax(Rx)``, renormalised over the chosen experts.

    While training, each expert takes at most ``capacity = ceil(capacity_factor · tokens · k / K)`` of the real
    (non-padding) tokens of one call (first come, first served in token order); padding is routed nowhere and
    counted nowhere, in capacity or in the auxiliary losses. A token over capacity is dropped *for that expert*
    (its gate there becomes 0) and counted in ``dropped_tokens``. Expert dropout zeroes gate entries with
    probability ``expert_dropout`` (no rescaling: the gate is a mixture weight, not an activation). Neither acts
    in eval mode, so an instance's output never depends on what else is in its batch at inference.
    """

    def __init__(
        self,
        d_in: int,
        n_experts: int,
        prior_width: int | None,
        *,
        top_k: int,
        capacity_factor: float | None,
        expert_dropout: float,
        prior_scale_init: float = 1.0,
        **kwargs,
    ) -> None:
        factory = {k: kwargs[k] for k in ("device", "dtype") if k in kwargs}
        super().__init__(d_in, n_experts, prior_width, **kwargs)
        self.top_k, self.capacity_factor, self.expert_dropout = top_k, capacity_factor, expert_dropout
        self.prior_scale = (
            nn.Parameter(torch.full((1,), prior_scale_init, **factory)) if prior_width is not None else None
        )
        self.register_buffer("dropped_tokens", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("routed_tokens", torch.zeros((), dtype=torch.long), persistent=False)

    def _logits(self, logits: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """Cell logits (already expanded from a factorised router's) plus the weighted prior."""
        prior = self.mapped_prior(prior)
        return logits if prior is None else logits + self.prior_scale * prior

    def capacity(self, tokens: int) -> int | None:
        if self.capacity_factor is None:
            return None
        return math.ceil(self.capacity_factor * tokens * self.top_k / self.n_experts)

    def forward(self, logits: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        logits = self.cell_logits(logits)
        probs = torch.softmax(self._logits(logits, prior), dim=-1)
        top, index = probs.topk(self.top_k, dim=-1)
        assigned = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, index, True)
        gates = torch.zeros_like(probs).scatter(-1, index, top / top.sum(-1, keepdim=True))
        if self.training:
            self.record_losses(logits, probs, assigned)
            real = self.real_token_mask(assigned)
            capacity = self.capacity(assigned[..., 0].numel() if real is None else int(real.sum()))
            if capacity is not None:
                flat = assigned.reshape(-1, self.n_experts)
                if real is not None:  # padding takes no place in an expert (its gates become 0; its loss is masked)
                    flat = flat & real[:, None]
                kept = flat & (flat.long().cumsum(0) <= capacity)
                if self.context is None or not self.context.recomputing:  # checkpointing reruns the same tokens
                    self.dropped_tokens += (flat & ~kept).sum()
                    self.routed_tokens += flat.sum()
                gates = gates * kept.view_as(assigned)
            if self.expert_dropout > 0:
                keep = torch.rand_like(gates) >= self.expert_dropout
                gates = gates * keep
        return gates

    def probabilities(self, logits: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        return torch.softmax(self._logits(self.cell_logits(logits), prior), dim=-1)

    def gate_values(self) -> dict[str, float]:
        routed = int(self.routed_tokens)
        return {"dropped_share": int(self.dropped_tokens) / routed} if routed else {}
