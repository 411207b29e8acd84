"""Configuration of a T-REX adapter: shapes, routing preset and the named constants of the paper's code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from trex.methods.config import PEFT_TYPE, AdapterConfig, IntuitionSource

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
__all__ = ["ADAPTER_CONFIG_NAME", "ADAPTER_WEIGHTS_NAME", "PEFT_TYPE", "MoR1EConfig", "TRexConfig"]

Mode = Literal["grid", "diagonal"]
Preset = Literal["paper", "clean"]


@dataclass
class TRexConfig(AdapterConfig):
    """How a T-REX adapter is shaped and routed.

    Every adapted linear layer keeps its frozen weight ``W0`` and gains ``A`` (``r_a x d_in``) and ``B``
    (``d_out x r_b``). In ``grid`` mode each pair (row ``a_i`` of A, column ``b_j`` of B) is a rank-one expert,
    so ``r_a * r_b`` experts cost only ``r_a + r_b`` vectors; in ``diagonal`` mode (the v1 MoR1E layout)
    the experts are the ``r`` pairs ``(a_i, b_i)``. A per-token router, fused with the per-instance
    intuition vector ``s``, gives the routing matrix ``G`` and ``y = W0 x + B (Gᵀ (A x))``.

    ``factorised_router=True`` (not in the papers) gives the router one logit per row and per column of the grid
    instead of per cell; see ``trex.methods.routers``.

    The two presets differ only in how ``G`` is formed (``p`` = softmax over all expert cells):

    ============  ======================================================================================
    ``paper``     ``G = σ(k·h) · [ σ(k·g) · c_tok · softmax(R x) + (1 - σ(k·g)) · c_int · s ]``
                  (the authors' code: intuition mixed in after the softmax; ``g``, ``h`` per-layer scalars
                  starting at 0; ``k = gate_sharpness``, ``c_tok = token_coefficient``,
                  ``c_int = intuition_coefficient``; no alpha/r scaling)
    ``clean``     ``G = (alpha / r_a) · K · softmax(R x + β · s)`` (intuition is a prior on the router logits
                  with a learnable per-layer scale ``β``; ``K`` = number of experts, so ``K·p`` has mean 1)
    ============  ======================================================================================

    Both start with ``B = 0``, so the adapted model equals the base model at initialisation. The ablations are
    one field away: ``use_intuition=False`` (router only), ``use_router=False`` (intuition only),
    ``intuition_source="task_category"`` (a one-hot of the task's category in place of intuition).
    """

    method: ClassVar[str] = "trex"
    display_name: ClassVar[str] = "T-REX"

    r_a: int = field(default=4, metadata={"help": "Rows of A: the number of input-side rank-one vectors."})
    r_b: int = field(default=8, metadata={"help": "Columns of B: the number of output-side rank-one vectors."})
    mode: Mode = field(
        default="grid",
        metadata={
            "help": "'grid': every (a_i, b_j) pair is an expert (r_a*r_b experts, mix-and-match, the T-REX paper). "
            "'diagonal': the v1 MoR1E layout, r_a == r_b == r experts (a_i, b_i)."
        },
    )
    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "Which nn.Linear modules to adapt: a list of names matched against the last part of the module "
            "path (e.g. ['q_proj', 'v_proj']), or a regex matched against the full path. None: every nn.Linear "
            "except the output head."
        },
    )
    preset: Preset = field(
        default="paper",
        metadata={"help": "'paper' reproduces the authors' routing exactly; 'clean' adds intuition to the logits."},
    )
    n_clusters: int | None = field(
        default=None,
        metadata={
            "help": "Length of the intuition vector (number of k-means centroids). None: the number of experts, "
            "and cluster c drives expert cell c."
        },
    )
    intuition_mapping: bool = field(
        default=False,
        metadata={
            "help": "Learn a per-layer linear map from the n_clusters scores to the experts (the reference code's "
            "--router_mapping). Required when n_clusters differs from the number of experts."
        },
    )
    use_intuition: bool = field(
        default=True,
        metadata={"help": "False: route on tokens only (the paper's 'w/o intuition' ablation); no intuition input."},
    )
    use_router: bool = field(
        default=True,
        metadata={"help": "False: no token router, G comes from the intuition alone (the 'intuition only' ablation)."},
    )
    intuition_source: IntuitionSource = field(
        default="bank",
        metadata={
            "help": "'bank': similarity to the k-means centroids of the intuition bank (the paper). 'task_category': "
            "a one-hot of the task's human category (the ablation of v2 Table 5); needs intuition_mapping=True."
        },
    )
    factorised_router: bool = field(
        default=False,
        metadata={
            "help": "grid mode: the router gives r_a row and r_b column logits, a cell's logit is their sum (the "
            "softmax over cells is then a row softmax times a column softmax): (r_a + r_b) x d_in router weights "
            "instead of r_a*r_b x d_in. Not in the papers (their router has one logit per cell); either preset."
        },
    )
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the adapter input (A and router)."})
    token_coefficient: float = field(
        default=32.0,
        metadata={"help": "paper preset: scale of the token softmax (32 = experts, so 32·p has mean 1 per cell)."},
    )
    intuition_coefficient: float = field(
        default=4.0, metadata={"help": "paper preset: scale of the intuition vector in G (the reference code's 4)."}
    )
    gate_sharpness: float = field(
        default=100.0,
        metadata={"help": "paper preset: k in sigmoid(k·g) for the intuition and output gates (the code's 100)."},
    )
    alpha: float = field(
        default=8.0, metadata={"help": "clean preset: G is scaled by alpha / r_a, as LoRA scales by alpha / r."}
    )
    intuition_scale_init: float = field(
        default=1.0, metadata={"help": "clean preset: initial value of β, the per-layer scale of s on the logits."}
    )
    load_balance_loss: float = field(
        default=0.0, metadata={"help": "Weight of the load-balancing loss on the token router (0: off, the paper)."}
    )
    router_z_loss: float = field(default=0.0, metadata={"help": "Weight of the router z-loss (0: off, the paper)."})
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Recorded on save: the base model the adapter was trained on."}
    )

    def __post_init__(self) -> None:
        self._validate()

    @property
    def n_experts(self) -> int:
        """Number of rank-one experts: r_a*r_b cells on the grid, r on the diagonal."""
        return self.r_a * self.r_b if self.mode == "grid" else self.r_a

    def _validate(self) -> None:
        self._check_positive_ints("r_a", "r_b")
        if self.mode not in ("grid", "diagonal"):
            raise ValueError(f"TRexConfig.mode must be 'grid' or 'diagonal', got {self.mode!r}")
        if self.mode == "diagonal" and self.r_a != self.r_b:
            raise ValueError(
                f"TRexConfig: diagonal mode pairs a_i with b_i, so r_a must equal r_b (got r_a={self.r_a}, "
                f"r_b={self.r_b})"
            )
        if self.preset not in ("paper", "clean"):
            raise ValueError(f"TRexConfig.preset must be 'paper' or 'clean', got {self.preset!r}")
        if self.factorised_router and self.mode != "grid":
            raise ValueError("TRexConfig.factorised_router needs mode='grid': the diagonal has no rows and columns")
        if self.factorised_router and not self.use_router:
            raise ValueError("TRexConfig.factorised_router=True needs use_router=True: no router to factorise")
        if not self.use_router and not self.use_intuition:
            raise ValueError("TRexConfig: use_router=False and use_intuition=False leave nothing to route with")
        self._check_prior()
        if self.gate_sharpness <= 0:
            raise ValueError(f"TRexConfig.gate_sharpness must be positive, got {self.gate_sharpness!r}")
        self._check_targets()


@dataclass
class MoR1EConfig(TRexConfig):
    """The v1 paper's MoR1E: the diagonal layout, ``r`` rank-one experts ``(a_i, b_i)``, 20 by default.

    v1 chose 20 experts as its balance of accuracy and parameters (its Table 7). The token coefficient follows the
    number of experts, so ``c_tok · p`` has mean 1 per expert as 32 does on the 4 x 8 grid.
    """

    method: ClassVar[str] = "mor1e"
    display_name: ClassVar[str] = "MoR1E"

    r_a: int = field(default=20, metadata={"help": "Number of rank-one experts (r_a == r_b on the diagonal)."})
    r_b: int = field(default=20, metadata={"help": "Equal to r_a."})
    mode: Mode = field(default="diagonal", metadata={"help": "Always 'diagonal' for MoR1E."})
    token_coefficient: float = field(default=20.0, metadata={"help": "paper preset: scale of the token softmax."})
