"""Added trainable parameters of every method for a model given only by its transformers config (no weights).

Each adapter is really injected into a model built on the meta device, so the counts come from the same code that
trains (and from peft itself for LoRA), not from a formula that could drift from them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from trex.config import TRexConfig
from trex.errors import one_line, shorten
from trex.methods import METHODS, build_adapter_model
from trex.methods.config import AdapterConfig
from trex.methods.lora import LoraMethodConfig


@dataclass(frozen=True)
class ParameterCount:
    method: str
    trainable: int
    base: int

    @property
    def share(self) -> float:
        """Added parameters as a fraction of the base model's."""
        return self.trainable / self.base

    @property
    def paper_share(self) -> float:
        """Added / (base + added): peft's "trainable%", the denominator of the papers' #ATP column."""
        return self.trainable / (self.base + self.trainable)


def describe(config: AdapterConfig) -> str:
    """A short label of a method config: its name and shape."""
    if isinstance(config, TRexConfig):
        shape = f"{config.r_a}x{config.r_b} {config.mode}" + (" factorised router" if config.factorised_router else "")
        return f"{config.display_name} {shape}" + ("" if config.use_intuition else " w/o intuition")
    if config.method == "lora":
        return f"LoRA r={config.r}"
    return f"{config.display_name} {config.n_experts}x{config.r}"


def default_method_configs() -> list[AdapterConfig]:
    """Every registered method at its default (the papers') size."""
    return [method.config_class() for method in METHODS.values()]


def load_model_config(path: str | Path) -> PretrainedConfig:
    """A transformers config from a ``config.json`` file or a model folder, with a clear error if it is not one."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no transformers config at {file}")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is not valid JSON ({err})") from err
    model_type = data.pop("model_type", None) if isinstance(data, dict) else None
    if not model_type:
        raise ValueError(f"{file} has no 'model_type' field, so it is not a transformers model config")
    try:
        return AutoConfig.for_model(model_type, **data)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{file}: not a config transformers can read ({shorten(one_line(str(err)))})") from err


def meta_model(config: PretrainedConfig) -> PreTrainedModel:
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_added_parameters(
    model_config: PretrainedConfig,
    configs: AdapterConfig | Sequence[AdapterConfig] | None = None,
    lora_ranks: tuple[int, ...] = (),
) -> list[ParameterCount]:
    """Added trainable parameters of each method config (default: every method), plus LoRA at extra ranks.

    Each adapter is built on its own meta-device copy of the model by the code that trains it (peft for LoRA).
    """
    if configs is None:
        configs = default_method_configs()
    elif isinstance(configs, AdapterConfig):
        configs = [configs]
    configs = [*configs, *(LoraMethodConfig(r=rank) for rank in lora_ranks)]
    base = sum(p.numel() for p in meta_model(model_config).parameters())
    counts = []
    for config in configs:
        adapter = build_adapter_model(meta_model(model_config), config)
        counts.append(ParameterCount(describe(config), adapter.parameter_counts()[0], base))
    return counts
