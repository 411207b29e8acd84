"""Configuration of a T-REX adapter: shapes, routing preset and the named constants of the paper's code."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trex import __version__

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
PEFT_TYPE = "TREX"

Mode = Literal["grid", "diagonal"]
Preset = Literal["paper", "clean"]


@dataclass
class TRexConfig:
    """How a T-REX adapter is shaped and routed.

    Every adapted linear layer keeps its frozen weight ``W0`` and gains ``A`` (``r_a x d_in``) and ``B``
    (``d_out x r_b``). In ``grid`` mode each pair (row ``a_i`` of A, column ``b_j`` of B) is a rank-one expert,
    so ``r_a * r_b`` experts cost only ``r_a + r_b`` vectors; in ``diagonal`` mode (the v1 MoR1E layout)
    the experts are the ``r`` pairs ``(a_i, b_i)``. A per-token router, fused with the per-instance
    intuition vector ``s``, gives the routing matrix ``G`` and ``y = W0 x + B (Gᵀ (A x))``.

    The two presets differ only in how ``G`` is formed (``p`` = softmax over all expert cells):

    ============  ======================================================================================
    ``paper``     ``G = σ(k·h) · [ σ(k·g) · c_tok · softmax(R x) + (1 - σ(k·g)) · c_int · s ]``
                  (the authors' code: intuition mixed in after the softmax; ``g``, ``h`` per-layer scalars
                  starting at 0; ``k = gate_sharpness``, ``c_tok = token_coefficient``,
                  ``c_int = intuition_coefficient``; no alpha/r scaling)
    ``clean``     ``G = (alpha / r_a) · K · softmax(R x + β · s)`` (intuition is a prior on the router logits
                  with a learnable per-layer scale ``β``; ``K`` = number of experts, so ``K·p`` has mean 1)
    ============  ======================================================================================

    Both start with ``B = 0``, so the adapted model equals the base model at initialisation.
    """

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
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Recorded on save: the base model the adapter was trained on."}
    )

    def __post_init__(self) -> None:
        self._validate()

    @property
    def n_experts(self) -> int:
        """Number of rank-one experts: r_a*r_b cells on the grid, r on the diagonal."""
        return self.r_a * self.r_b if self.mode == "grid" else self.r_a

    @property
    def intuition_width(self) -> int:
        """Width of the intuition vector each instance must come with."""
        return self.n_experts if self.n_clusters is None else self.n_clusters

    def _validate(self) -> None:
        for name in ("r_a", "r_b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TRexConfig.{name} must be a positive integer, got {value!r}")
        if self.mode not in ("grid", "diagonal"):
            raise ValueError(f"TRexConfig.mode must be 'grid' or 'diagonal', got {self.mode!r}")
        if self.mode == "diagonal" and self.r_a != self.r_b:
            raise ValueError(
                f"TRexConfig: diagonal mode pairs a_i with b_i, so r_a must equal r_b (got r_a={self.r_a}, "
                f"r_b={self.r_b})"
            )
        if self.preset not in ("paper", "clean"):
            raise ValueError(f"TRexConfig.preset must be 'paper' or 'clean', got {self.preset!r}")
        if self.n_clusters is not None and (not isinstance(self.n_clusters, int) or self.n_clusters < 1):
            raise ValueError(f"TRexConfig.n_clusters must be a positive integer or None, got {self.n_clusters!r}")
        if self.use_intuition and self.intuition_width != self.n_experts and not self.intuition_mapping:
            raise ValueError(
                f"TRexConfig: n_clusters={self.n_clusters} differs from the number of experts ({self.n_experts}); "
                "set intuition_mapping=True to learn a map from clusters to experts, or n_clusters=None"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TRexConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.gate_sharpness <= 0:
            raise ValueError(f"TRexConfig.gate_sharpness must be positive, got {self.gate_sharpness!r}")
        if isinstance(self.target_modules, str):
            try:
                re.compile(self.target_modules)
            except re.error as err:
                raise ValueError(
                    f"TRexConfig.target_modules is not a valid regex: {self.target_modules!r} ({err})"
                ) from err
        elif self.target_modules is not None:
            if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
                raise ValueError(
                    f"TRexConfig.target_modules must be None, a regex or a non-empty list of names, "
                    f"got {self.target_modules!r}"
                )
            self.target_modules = list(self.target_modules)

    def to_dict(self) -> dict[str, Any]:
        """The fields plus the peft-style bookkeeping keys written to ``adapter_config.json``."""
        return {"peft_type": PEFT_TYPE, "trex_version": __version__, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TRexConfig:
        """Build a config from a dict, naming unknown keys (with the closest known one) instead of ignoring them."""
        data = {k: v for k, v in data.items() if k not in ("peft_type", "trex_version", "files")}
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"{source}: unknown T-REX config field {key!r}{hint}")
        return cls(**data)

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write the config as JSON (callers make the write atomic)."""
        Path(path).write_text(json.dumps({**self.to_dict(), **(extra or {})}, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TRexConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no T-REX adapter config at {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); the adapter folder is corrupt") from err
        peft_type = data.get("peft_type") if isinstance(data, dict) else None
        if peft_type != PEFT_TYPE:
            raise ValueError(f"{path} is not a T-REX adapter config (peft_type={peft_type!r}, expected {PEFT_TYPE!r})")
        return cls.from_dict(data, source=str(path))
