"""MoLoRA and SiRA: a mixture of ``E`` ordinary LoRA experts of rank ``r`` per adapted linear layer.

    y = W0 x + (alpha / r) · Σ_e g_e(x) · B_e A_e x

MoLoRA (Zadouri et al. 2023, arXiv 2309.05444) routes every token softly, ``g = softmax(R x)``; SiRA (Zhu et al.
2023, arXiv 2311.09179) keeps the top ``k`` experts per token, limits how many tokens each expert takes in a batch
and drops gate entries at random while training (``trex.methods.routers.TopKRouter``). With ``use_intuition`` the
per-instance intuition becomes a prior on the router logits: v1's ablation of intuition on ordinary LoRA experts.

The experts are stacked, never looped over: ``A`` (E, r, d_in) flattens into one (E·r, d_in) matmul fused with the
router, the gates scale each expert's r-wide slice, and ``B`` (d_out, E, r) flattens into one (d_out, E·r) matmul.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trex.methods.base import AdapterLayer, RoutedAdapterModel
from trex.methods.config import AdapterConfig, IntuitionSource
from trex.methods.routers import Router, SoftmaxRouter, TopKRouter
from trex.routing import RoutingContext

INIT_STD = 0.02
"""MoLoRA's code initialises A and the router from N(0, 0.02²)."""


@dataclass
class MoLoRAConfig(AdapterConfig):
    """E LoRA experts of rank r with a dense softmax router (MoLoRA; the papers' baseline is 8 x 4)."""

    method: ClassVar[str] = "molora"
    display_name: ClassVar[str] = "MoLoRA"

    n_experts: int = field(default=8, metadata={"help": "Number of LoRA experts E (the papers' baseline: 8)."})
    r: int = field(default=4, metadata={"help": "Rank of each expert (the papers' baseline: 4)."})
    alpha: float = field(
        default=16.0, metadata={"help": "Each expert's update is scaled by alpha / r (MoLoRA's code: 16 / 4)."}
    )
    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "As TRexConfig.target_modules (None: every nn.Linear but the head)."}
    )
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the adapter input (as lora_dropout)."})
    use_intuition: bool = field(
        default=False, metadata={"help": "True: intuition as a prior on the router logits (v1's ablation)."}
    )
    intuition_source: IntuitionSource = field(default="bank", metadata={"help": "As TRexConfig.intuition_source."})
    n_clusters: int | None = field(default=None, metadata={"help": "Intuition width (None: n_experts)."})
    intuition_mapping: bool = field(default=False, metadata={"help": "Learn a map from clusters to experts."})
    intuition_scale_init: float = field(default=1.0, metadata={"help": "Initial β of the prior on the logits."})
    load_balance_loss: float = field(default=0.0, metadata={"help": "Weight of the load-balancing loss (0: off)."})
    router_z_loss: float = field(default=0.0, metadata={"help": "Weight of the router z-loss (0: off)."})
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Recorded on save: the base model the adapter was trained on."}
    )

    def __post_init__(self) -> None:
        self._check_positive_ints("n_experts", "r")
        self._check_prior()
        self._check_targets()
        self._check_routing()

    def _check_routing(self) -> None:
        """Nothing more for the dense router."""

    def router(self, d_in: int, routing: RoutingContext, factory: dict) -> Router:
        return SoftmaxRouter(
            d_in, self.n_experts, self.prior_width, scale=1.0, prior_scale_init=self.intuition_scale_init,
            **self._router_options(routing, factory),
        )  # fmt: skip

    def _router_options(self, routing: RoutingContext, factory: dict) -> dict:
        return dict(
            map_prior=self.intuition_mapping, load_balance_loss=self.load_balance_loss,
            router_z_loss=self.router_z_loss, context=routing, init_weight="normal", **factory,
        )  # fmt: skip


@dataclass
class SiRAConfig(MoLoRAConfig):
    """SiRA: the MoLoRA experts with top-k routing, an expert capacity, expert dropout and a load-balancing loss."""

    method: ClassVar[str] = "sira"
    display_name: ClassVar[str] = "SiRA"

    top_k: int = field(default=2, metadata={"help": "Experts per token."})
    capacity_factor: float | None = field(
        default=1.0,
        metadata={
            "help": "Each expert takes at most ceil(factor · tokens · k / E) tokens of a batch (None: no limit)."
        },
    )
    expert_dropout: float = field(default=0.5, metadata={"help": "Dropout on the gate entries while training."})
    load_balance_loss: float = field(default=0.01, metadata={"help": "Weight of the load-balancing loss."})

    def _check_routing(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= self.n_experts:
            raise ValueError(
                f"SiRAConfig.top_k must be an integer in [1, n_experts={self.n_experts}], got {self.top_k!r}"
            )
        if self.capacity_factor is not None and not self.capacity_factor > 0:
            raise ValueError(f"SiRAConfig.capacity_factor must be positive or None, got {self.capacity_factor!r}")
        if not 0.0 <= self.expert_dropout < 1.0:
            raise ValueError(f"SiRAConfig.expert_dropout must be in [0, 1), got {self.expert_dropout!r}")

    def router(self, d_in: int, routing: RoutingContext, factory: dict) -> Router:
        return TopKRouter(
            d_in, self.n_experts, self.prior_width, top_k=self.top_k, capacity_factor=self.capacity_factor,
            expert_dropout=self.expert_dropout, prior_scale_init=self.intuition_scale_init,
            **self._router_options(routing, factory),
        )  # fmt: skip


class MixtureLoRALinear(AdapterLayer):
    """A frozen linear layer plus E routed LoRA experts (MoLoRA or SiRA, by the config's router).

    molora_A: (E, r, d_in)  N(0, 0.02²)   molora_B: (d_out, E, r) zero, so the layer starts as the base layer
    molora_router.weight: (E, d_in)  N(0, 0.02²)   (the initialisations of MoLoRA's code, src/molora.py)
    """

    prefix = "molora_"

    def __init__(self, base_layer: nn.Linear, config: MoLoRAConfig, routing: RoutingContext) -> None:
        super().__init__(base_layer, routing, config.prior_width)
        self.config = config
        e, r = config.n_experts, config.r
        self.molora_A = nn.Parameter(torch.empty(e, r, self.in_features, **self.factory))
        self.molora_B = nn.Parameter(torch.zeros(self.out_features, e, r, **self.factory))
        self.molora_router = config.router(self.in_features, routing, self.factory)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        nn.init.normal_(self.molora_A, std=INIT_STD)

    @property
    def router(self) -> Router:
        return self.molora_router

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        prior = self.prior(x, self.routing.intuition)
        e, r = self.config.n_experts, self.config.r
        x = self.dropout(x.to(self.molora_A.dtype))
        weight = torch.cat([self.molora_A.flatten(0, 1), self.molora_router.weight])
        ax, logits = F.linear(x, weight).split([e * r, e], dim=-1)
        gates = self.molora_router(logits, prior) * (self.config.alpha / r)
        mixed = (ax.unflatten(-1, (e, r)) * gates.unsqueeze(-1)).flatten(-2)
        return F.linear(mixed, self.molora_B.flatten(1, 2))

    def router_probabilities(self, x: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor:
        weight = self.molora_router.weight
        return self.molora_router.probabilities(F.linear(x.to(weight.dtype), weight), self.prior(x, intuition))

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, experts={c.n_experts}, r={c.r}, "
            f"router={type(self.molora_router).__name__}"
        )


class MixtureLoRAModel(RoutedAdapterModel):
    """A causal LM with MoLoRA or SiRA layers; the life cycle is ``RoutedAdapterModel``'s."""

    config_class = MoLoRAConfig

    def make_layer(self, base_layer: nn.Linear) -> MixtureLoRALinear:
        return MixtureLoRALinear(base_layer, self.adapter_config, self.routing)
