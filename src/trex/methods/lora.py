"""LoRA, the papers' main baseline, through peft itself: ``LoraConfig`` + ``get_peft_model`` on the same modules.

The saved folder is a plain peft adapter (``peft.PeftModel.from_pretrained`` loads it, and so does ``trex eval``);
trex adds only that the files are written atomically, config last. ``PeftLoraModel`` offers the interface of
``trex.methods.base.AdapterModel`` so the trainer, evaluation and the CLI treat it as any other method.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from trex.methods.base import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, AdapterModel, find_target_modules
from trex.methods.config import AdapterConfig, read_config_file


@dataclass
class LoraMethodConfig(AdapterConfig):
    """LoRA of rank ``r`` on the same target modules as the other methods; peft does the rest."""

    method: ClassVar[str] = "lora"
    display_name: ClassVar[str] = "LoRA"

    r: int = field(default=32, metadata={"help": "LoRA rank (the papers' baseline: 32)."})
    alpha: float = field(
        default=16.0,
        metadata={"help": "lora_alpha, scale alpha / r (the authors' train_args/llama2-13b-trex.json: 16)."},
    )
    dropout: float = field(default=0.0, metadata={"help": "lora_dropout (the authors' training config: 0.0)."})
    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "As TRexConfig.target_modules (None: every nn.Linear but the head)."}
    )
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Recorded on save: the base model the adapter was trained on."}
    )

    def __post_init__(self) -> None:
        self._check_positive_ints("r")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoraMethodConfig.dropout must be in [0, 1), got {self.dropout!r}")
        self._check_targets()

    def peft_config(self, model: nn.Module) -> LoraConfig:
        """peft's config for ``model``: the module names trex would adapt, as a regex of their full paths."""
        targets = find_target_modules(model, self)
        pattern = "|".join(targets).replace(".", r"\.")
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=f"^(?:{pattern})$",
            bias="none", task_type="CAUSAL_LM", base_model_name_or_path=self.base_model_name_or_path,
        )  # fmt: skip

    @classmethod
    def from_peft(cls, peft_config: LoraConfig) -> LoraMethodConfig:
        targets = peft_config.target_modules
        return cls(
            r=peft_config.r, alpha=float(peft_config.lora_alpha), dropout=float(peft_config.lora_dropout),
            target_modules=sorted(targets) if isinstance(targets, set | list) else targets,
            base_model_name_or_path=peft_config.base_model_name_or_path,
        )  # fmt: skip


class PeftLoraModel(AdapterModel):
    """A peft ``PeftModel`` with LoRA, behind trex's adapter-model interface (no per-instance input, no router)."""

    def __init__(
        self, base_model: nn.Module, config: LoraMethodConfig, intuition_bank: Any = None,
        peft_model: PeftModel | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if intuition_bank is not None:
            raise ValueError("LoRA takes no intuition bank")
        training = base_model.training
        if peft_model is None:
            peft_config = config.peft_config(base_model)
            peft_model = get_peft_model(base_model, peft_config)
        self.peft_model = peft_model
        self.train(training)  # peft's new modules start in training mode (lora_dropout would act at inference)
        self.adapter_config = config
        self.adapted_modules = sorted(
            name for name, m in peft_model.get_base_model().named_modules() if hasattr(m, "lora_A") and name
        )

    @property
    def base_model(self) -> nn.Module:
        return self.peft_model.get_base_model()

    def forward(self, *args, intuition: Any = None, intuition_text: Any = None, task: Any = None, **kwargs):
        self._refuse_instance_inputs(intuition, intuition_text, task)
        return self.peft_model(*args, **kwargs)

    def generate(self, *args, intuition: Any = None, intuition_text: Any = None, task: Any = None, **kwargs):
        self._refuse_instance_inputs(intuition, intuition_text, task)
        return self.peft_model.generate(*args, **kwargs)

    @staticmethod
    def _refuse_instance_inputs(*values: Any) -> None:
        if any(v is not None for v in values):
            raise ValueError("LoRA takes no per-instance input; do not pass intuition, intuition_text or task")

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        with self.peft_model.disable_adapter():
            yield

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None, **kwargs):
        options = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        self.base_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options, **kwargs)

    def merge_and_unload(self) -> nn.Module:
        return self.peft_model.merge_and_unload()

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        named = dict(self.peft_model.named_parameters())
        return {key: named[_param_name(key)] for key in get_peft_model_state_dict(self.peft_model)}

    def load_adapter_weights(self, tensors: dict[str, torch.Tensor], source: str = "adapter") -> None:
        expected = set(get_peft_model_state_dict(self.peft_model))
        unexpected, missing = sorted(set(tensors) - expected), sorted(expected - set(tensors))
        if unexpected or missing:
            example = (unexpected or missing)[0]
            raise ValueError(
                f"{source} does not fit this LoRA model ({len(unexpected)} unexpected, {len(missing)} missing "
                f"tensors, e.g. {example!r}): the adapter was made for another base model or target_modules"
            )
        current = get_peft_model_state_dict(self.peft_model)
        for key, value in tensors.items():
            if value.shape != current[key].shape:
                raise ValueError(
                    f"{source}: {key} has shape {tuple(value.shape)} in the adapter but {tuple(current[key].shape)} "
                    "on this model: the adapter was made for another base model or rank"
                )
        set_peft_model_state_dict(self.peft_model, tensors)

    def save_pretrained(self, save_directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """peft's files, written into a staging folder and moved in one by one, ``adapter_config.json`` last."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        if state_dict is not None:
            state_dict = {k.removeprefix("peft_model."): v for k, v in state_dict.items()}
        self.peft_model.peft_config["default"].base_model_name_or_path = self.adapter_config.base_model_name_or_path
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.peft_model.save_pretrained(staging, state_dict=state_dict, safe_serialization=True)
            names = sorted(p.name for p in staging.iterdir() if p.name != ADAPTER_CONFIG_NAME)
            for name in [*names, ADAPTER_CONFIG_NAME]:
                os.replace(staging / name, directory / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def from_pretrained(
        cls,
        base_model: nn.Module,
        adapter_directory: str | Path,
        is_trainable: bool = False,
        intuition_bank: Any = None,
    ) -> PeftLoraModel:
        directory = Path(adapter_directory)
        data = read_config_file(directory / ADAPTER_CONFIG_NAME)
        if data.get("peft_type") != "LORA":
            raise ValueError(
                f"{directory / ADAPTER_CONFIG_NAME} is not a LoRA adapter (peft_type={data.get('peft_type')!r})"
            )
        if not (directory / ADAPTER_WEIGHTS_NAME).is_file():
            raise FileNotFoundError(f"adapter folder {directory} is missing {ADAPTER_WEIGHTS_NAME}")
        try:
            peft_model = PeftModel.from_pretrained(base_model, directory, is_trainable=is_trainable)
        except (RuntimeError, KeyError, TypeError) as err:
            raise ValueError(f"cannot load the LoRA adapter {directory} onto this model: {err}") from err
        config = LoraMethodConfig.from_peft(peft_model.peft_config["default"])
        model = cls(base_model, config, peft_model=peft_model)
        if not is_trainable:
            model.eval()
        return model


def _param_name(state_key: str) -> str:
    """peft's saved key ``...lora_A.weight`` is the parameter ``...lora_A.default.weight``."""
    module, _, leaf = state_key.rpartition(".")
    return f"{module}.default.{leaf}"
