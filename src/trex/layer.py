"""``TRexLinear``: a frozen ``nn.Linear`` plus a routed mixture of rank-one experts."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trex.config import TRexConfig
from trex.functional import fused_rank_one_mixture, mix_rank_one, rank_one_mixture_from, routing_matrix
from trex.methods.base import AdapterLayer
from trex.methods.routers import GatedPriorRouter, Router, SoftmaxRouter
from trex.routing import RoutingContext


def trex_router(config: TRexConfig, d_in: int, routing: RoutingContext, factory: dict) -> Router:
    """The router of the config's preset: the authors' gated rule (``paper``) or the logit prior (``clean``)."""
    shared = dict(
        token_router=config.use_router,
        map_prior=config.intuition_mapping,
        load_balance_loss=config.load_balance_loss,
        router_z_loss=config.router_z_loss,
        context=routing,
        grid=(config.r_a, config.r_b) if config.factorised_router else None,
        **factory,
    )
    if config.preset == "paper":
        return GatedPriorRouter(
            d_in, config.n_experts, config.prior_width,
            token_coefficient=config.token_coefficient, intuition_coefficient=config.intuition_coefficient,
            sharpness=config.gate_sharpness, **shared,
        )  # fmt: skip
    return SoftmaxRouter(
        d_in, config.n_experts, config.prior_width,
        scale=config.alpha / config.r_a * config.n_experts, prior_scale_init=config.intuition_scale_init, **shared,
    )  # fmt: skip


class TRexLinear(AdapterLayer):
    """A frozen linear layer with a T-REX adapter::

        y = W0 x + B · z,    z_j = Σ_i (A x)_i · G_ij(x, s)

        x: (..., d_in)          W0 = base_layer.weight: (d_out, d_in), frozen
        A = trex_A: (r_a, d_in)  Kaiming-uniform     B = trex_B: (d_out, r_b), zero (so y = W0 x at init)
        R = trex_router.weight: (K, d_in), zero      cell k of G is (A-row k // r_b, B-column k % r_b)
            (factorised_router: (r_a + r_b, d_in), row and column logits whose sums are the K cell logits)
        s: (batch, n_clusters) intuition, one row per instance, broadcast over the tokens of that instance
        G: (..., r_a, r_b) per token; on the diagonal (v1 MoR1E) G is diagonal and K = r_a = r_b

    G comes from the router logits ``R x`` and ``s`` by the preset's router (``trex.methods.routers``). A and R
    read x in one matmul; every scalar gate is folded into the K-wide routing vector, never the d_out-wide output.
    ``routing_weights`` returns the effective G, so ``layer(x) == base_layer(x) + ((A x)[..., :, None] * G).sum(-2)
    @ B.T`` holds exactly. Adapter weights are fp32 (or wider) whatever the base's dtype.
    """

    prefix = "trex_"

    def __init__(self, base_layer: nn.Linear, config: TRexConfig, routing: RoutingContext) -> None:
        super().__init__(base_layer, routing, config.prior_width)
        self.config = config
        self.trex_A = nn.Parameter(torch.empty(config.r_a, self.in_features, **self.factory))
        self.trex_B = nn.Parameter(torch.zeros(self.out_features, config.r_b, **self.factory))
        self.trex_router = trex_router(config, self.in_features, routing, self.factory)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.reset_trex_parameters()

    @property
    def router(self) -> Router:
        return self.trex_router

    def _parameter_dtype(self) -> torch.dtype:
        return self.trex_A.dtype  # one attribute instead of a walk over the parameters, on every call

    def reset_trex_parameters(self) -> None:
        """A as nn.Linear's default (Kaiming-uniform, a=√5), B and router zero: the adapter starts as a no-op."""
        nn.init.kaiming_uniform_(self.trex_A, a=math.sqrt(5))
        nn.init.zeros_(self.trex_B)
        self.trex_router.reset_parameters()

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(A x, R x) from one matmul over the concatenated weights."""
        weight = self.trex_router.weight
        if weight is None:
            return F.linear(x, self.trex_A), None
        ax, logits = F.linear(x, torch.cat([self.trex_A, weight])).split([self.config.r_a, weight.shape[0]], dim=-1)
        return ax, logits

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        prior = self.prior(x, self.routing.intuition)
        dtype = self.trex_A.dtype
        x = x if x.dtype == dtype else x.to(dtype)  # the checks are cheaper than a no-op call (decoding: per layer)
        if self.config.dropout > 0:
            x = self.dropout(x)
        # meta: no autocast; under torch.compile the op-by-op graph, which inductor fuses better than a Function
        fusable = self.fused and not x.is_meta and not torch.is_autocast_enabled(x.device.type)
        fusable = fusable and not torch.compiler.is_compiling()
        if fusable and not torch.is_grad_enabled() and self._fusable_router():
            return self._output_without_grad(x, prior)
        form = self._softmax_affine(prior) if fusable else None
        if form is not None:
            return fused_rank_one_mixture(
                x, self.trex_A, self.trex_router.weight, self.trex_B, *form, self.config.r_b,
                self.config.mode == "diagonal", self.trex_router.grid,
            )  # fmt: skip
        ax, logits = self._project(x)
        mixed = mix_rank_one(ax, self.trex_router(logits, prior), self.config.r_b, self.config.mode == "diagonal")
        return F.linear(mixed, self.trex_B)

    # ---- performance path (benchmarks/, docs/benchmarks.md) -------------------------------------------------------

    fused: bool = True
    """Run the adapter as one autograd node (``trex.functional.fused_rank_one_mixture``) when the router allows it;
    False runs the router module and the mix op by op (the reference the float64 tests compare the fused path to).
    Under ``torch.compile`` the op-by-op path runs either way: compiled, it trained a step as fast as compiled LoRA
    where the compiled fused path took 1.05x (docs/benchmarks.md), at the price of 44 more saved values per token
    (d + 76 against the fused path's d + 32, measured at d = 576)."""

    def _fusable_router(self) -> bool:
        """The two deterministic routers of the presets, with a token router, while no auxiliary loss is collected
        (those need the probabilities in the graph): anything else runs op by op."""
        router = self.trex_router
        if router.weight is None or (router.training and (router.load_balance_loss > 0 or router.router_z_loss > 0)):
            return False
        return type(router) in (GatedPriorRouter, SoftmaxRouter)

    def _softmax_affine(self, prior: torch.Tensor | None) -> tuple | None:
        """The router as ``G = scale·softmax(Rx + logit_bias) + prior_scale·prior``: those four, or None.

        Written out for the routers of ``_fusable_router`` (the same products, in the same order, as their
        ``forward``).
        """
        if not self._fusable_router():
            return None
        router = self.trex_router
        scale, prior_scale = self._gate_products()
        prior = router.mapped_prior(prior)
        if type(router) is GatedPriorRouter:
            return scale, None, prior_scale, prior
        return scale, None if prior is None else router.prior_scale * prior, None, None

    def _gate_products(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scale, prior_scale): the router's gates folded into two 1-element tensors."""
        router = self.trex_router
        if type(router) is GatedPriorRouter:
            out = torch.sigmoid(router.sharpness * router.output_gate)
            w = torch.sigmoid(router.sharpness * router.intuition_gate)
            return out * w * router.token_coefficient, out * (1.0 - w) * router.intuition_coefficient
        return torch.full((1,), router.scale, dtype=router.weight.dtype, device=router.weight.device), None

    _no_grad_cache: tuple | None = None

    def _output_without_grad(self, x: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """The fused computation with what only changes with the weights or the intuition made once, not per call.

        Without gradients (generation, evaluation) a decoded token's adapter work is a few tiny ops, so stacking A
        with the router, the ten scalar gate ops and scaling the prior were most of it. They are cached against the
        identity, version (bumped by every in-place write: optimizer steps, loads), dtype and device of every
        tensor they come from, so a stale value is never served.
        """
        router = self.trex_router
        sources = [self.trex_A, router.weight, *(getattr(router, n, None) for n in ("output_gate", "intuition_gate"))]
        sources.append(router.prior_map)
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in sources if t is not None)
        if self._no_grad_cache is None or self._no_grad_cache[0] != key:
            scale, prior_scale = self._gate_products()
            self._no_grad_cache = (key, torch.cat([self.trex_A, router.weight]), scale, prior_scale, [None])
        _, stacked, scale, prior_scale, held = self._no_grad_cache
        term = None
        if prior is not None:
            if held[0] is None or held[0][0] is not prior or held[0][1] != prior._version:
                factor = prior_scale if type(router) is GatedPriorRouter else router.prior_scale
                held[0] = (prior, prior._version, factor * router.mapped_prior(prior))
            term = held[0][2]
        gated = type(router) is GatedPriorRouter
        return rank_one_mixture_from(
            x, stacked, self.config.r_a, self.trex_B, scale, None if gated else term, term if gated else None,
            self.config.r_b, self.config.mode == "diagonal", router.grid,
        )[0]  # fmt: skip

    def routing_weights(self, x: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor:
        """The effective mixing matrix G, shape (*x.shape[:-1], r_a, r_b), with every gate and scale folded in.

        The router's ``forward`` is called directly, not through the module: analytics run it from a hook after
        the layer's forward, where module hooks (DeepSpeed ZeRO-3 gathers and releases parameters in them) must
        not fire a second time."""
        g = self.trex_router.forward(self._logits(x), self.prior(x, intuition))
        return routing_matrix(g, self.config.r_a, self.config.r_b, self.config.mode == "diagonal")

    def router_probabilities(self, x: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor:
        """The router's distribution over the K expert cells (clean preset: with the intuition prior).

        For routing analytics (entropy, cell usage); the paper preset mixes intuition in after this softmax.
        """
        return self.trex_router.probabilities(self._logits(x), self.prior(x, intuition))

    def _logits(self, x: torch.Tensor) -> torch.Tensor | None:
        weight = self.trex_router.weight
        return None if weight is None else F.linear(x.to(weight.dtype), weight)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, r_a={c.r_a}, r_b={c.r_b}, "
            f"mode={c.mode}, preset={c.preset}, experts={c.n_experts}"
        )
