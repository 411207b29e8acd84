"""The adapter methods by name: ``adapter.method`` in a recipe, ``peft_type``/``method`` in a saved folder.

======== ================================================ =====================================
name     what                                             config / model
======== ================================================ =====================================
trex     T-REX: rank-one grid, token router + intuition    ``TRexConfig`` / ``TRexModel``
mor1e    v1 MoR1E: the diagonal layout, 20 experts         ``MoR1EConfig`` / ``TRexModel``
lora     LoRA through peft itself (a plain peft folder)    ``LoraMethodConfig`` / ``PeftLoraModel``
molora   MoLoRA: E LoRA experts, dense softmax router      ``MoLoRAConfig`` / ``MixtureLoRAModel``
sira     SiRA: the same experts, top-k with capacity       ``SiRAConfig`` / ``MixtureLoRAModel``
======== ================================================ =====================================

The ablations are fields of these configs (see ``docs/methods.md``). Everything here imports lazily: the method
modules import the package's core, which imports ``trex.methods.config``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trex.fields import suggest


@dataclass(frozen=True)
class Method:
    name: str
    config: str
    model: str
    summary: str

    @property
    def config_class(self) -> type:
        return _load(self.config)

    @property
    def model_class(self) -> type:
        return _load(self.model)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("trex", "trex.config:TRexConfig", "trex.model:TRexModel", "T-REX 4x8 grid, token router + intuition"),
        Method("mor1e", "trex.config:MoR1EConfig", "trex.model:TRexModel", "v1 MoR1E, 20 diagonal rank-1 experts"),
        Method("lora", "trex.methods.lora:LoraMethodConfig", "trex.methods.lora:PeftLoraModel", "LoRA r=32 (peft)"),
        Method(
            "molora",
            "trex.methods.molora:MoLoRAConfig",
            "trex.methods.molora:MixtureLoRAModel",
            "MoLoRA, 8 LoRA experts of rank 4, soft routing",
        ),  # fmt: skip
        Method(
            "sira",
            "trex.methods.molora:SiRAConfig",
            "trex.methods.molora:MixtureLoRAModel",
            "SiRA, 8 LoRA experts of rank 4, top-k with capacity and expert dropout",
        ),  # fmt: skip
    )
}


def _load(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown adapter method {name!r}{suggest(name, list(METHODS))}")
    return METHODS[name]


def method_of_config(data: dict[str, Any], source: str = "adapter config") -> Method:
    """The method a saved ``adapter_config.json`` belongs to: peft's ``LORA``, or ``TREX`` plus ``method``."""
    peft_type = data.get("peft_type")
    if peft_type == "LORA":
        return METHODS["lora"]
    if peft_type != "TREX":
        raise ValueError(f"{source}: peft_type {peft_type!r} is not an adapter trex can load (TREX or LORA)")
    method = data.get("method", "trex")  # trex 0.1.0 wrote no method: every folder was T-REX
    if not isinstance(method, str) or method not in METHODS or method == "lora":
        raise ValueError(f"{source}: unknown method {method!r}{suggest(str(method), list(METHODS))}")
    return METHODS[method]


def build_adapter_model(base_model: Any, config: Any, **kwargs: Any) -> Any:
    """Wrap ``base_model`` with the adapter ``config`` describes (the method is the config's class)."""
    return get_method(config.method).model_class(base_model, config, **kwargs)


def load_adapter_model(base_model: Any, directory: str | Path, is_trainable: bool = False, **kwargs: Any) -> Any:
    """Load any method's saved adapter folder onto ``base_model``."""
    from trex.methods.base import read_adapter_config

    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"adapter folder {path} does not exist")
    method = method_of_config(read_adapter_config(path), source=str(path / "adapter_config.json"))
    return method.model_class.from_pretrained(base_model, path, is_trainable=is_trainable, **kwargs)


__all__ = ["METHODS", "Method", "build_adapter_model", "get_method", "load_adapter_model", "method_of_config"]
