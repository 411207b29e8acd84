"""Added trainable parameters of T-REX and LoRA for a model given only by its transformers config (no weights).

Both adapters are really injected into a model built on the meta device, so the counts come from the same
code that trains (T-REX) and from peft itself (LoRA), not from a formula that could drift from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from trex.config import TRexConfig
from trex.model import find_target_modules, get_trex_model


@dataclass(frozen=True)
class ParameterCount:
    method: str
    trainable: int
    base: int

    @property
    def share(self) -> float:
        """Added parameters as a fraction of the base model's."""
        return self.trainable / self.base


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
    return AutoConfig.for_model(model_type, **data)


def meta_model(config: PretrainedConfig) -> PreTrainedModel:
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_added_parameters(
    model_config: PretrainedConfig, trex_config: TRexConfig, lora_ranks: tuple[int, ...] = (32,)
) -> list[ParameterCount]:
    """T-REX with ``trex_config`` and LoRA at each rank, on the same target modules."""
    base = sum(p.numel() for p in meta_model(model_config).parameters())
    trex = get_trex_model(meta_model(model_config), trex_config)
    counts = [
        ParameterCount(
            f"T-REX {trex_config.r_a}x{trex_config.r_b} {trex_config.mode}", trex.parameter_counts()[0], base
        )
    ]
    for rank in lora_ranks:
        model = meta_model(model_config)
        targets = find_target_modules(model, trex_config)
        lora = get_peft_model(model, LoraConfig(r=rank, target_modules=targets))
        counts.append(
            ParameterCount(f"LoRA r={rank}", sum(p.numel() for p in lora.parameters() if p.requires_grad), base)
        )
    return counts
