"""The model under evaluation: a causal LM, its tokenizer, and the per-instance inputs its forward needs.

Every method plugs in the same way: its adapter model's ``instance_inputs`` gives one prior row per instance
(T-REX: intuition from the adapter's own bank; the task-category ablation: a one-hot of the task's category);
a base model or LoRA adds nothing. Scoring code only ever calls
``model(input_ids=..., attention_mask=..., **lm.extra_inputs(texts, tasks))`` and the matching ``generate``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trex.eval.errors import EvalError

InstanceInputs = Callable[[Sequence[str], Sequence[str | None] | None], dict[str, torch.Tensor]]
"""Extra forward/generate arguments from each instance's intuition text and task, one row per instance."""

DEFAULT_CONTEXT = 2048
"""Context length assumed when the model config states none."""


def adapter_instance_inputs(model: nn.Module) -> InstanceInputs | None:
    """The adapter model's per-instance prior as extra inputs (None: the model takes none)."""
    if not getattr(model, "needs_instance_inputs", False):
        return None
    config = model.adapter_config
    if getattr(config, "intuition_source", "bank") == "bank" and getattr(model, "intuition_bank", None) is None:
        raise EvalError(
            "this adapter routes with intuition but its folder has no intuition bank (intuition/); save the "
            "adapter with its bank attached, or attach one with model.attach_intuition_bank(bank)"
        )

    def inputs(texts: Sequence[str], tasks: Sequence[str | None] | None = None) -> dict[str, torch.Tensor]:
        return {"intuition": model.instance_inputs(list(texts), None if tasks is None else list(tasks))}

    return inputs


trex_instance_inputs = adapter_instance_inputs
"""The name of ``adapter_instance_inputs`` when only T-REX had per-instance inputs."""


@dataclass
class EvalModel:
    """What the scorers need: the model, its tokenizer, the per-instance inputs, and how prompts are built.

    Attributes:
        model: A causal LM (a transformers model or an adapter model of `trex.methods`), in eval mode.
        tokenizer: Its tokenizer; it must have a pad token (or an EOS token, used as pad).
        name: Base model name or path, as recorded in results.
        adapter: Adapter folder, or None for the base model alone.
        instance_inputs: Extra per-instance inputs (T-REX intuition, a category prior), or None.
        chat_template: Wrap prompts in the tokenizer's chat template (when it has one), as training does.
        max_length: Context length; prompts are shortened from the passage side to fit. None: the model's own.
        trained_with: The prompt settings the adapter recorded at training (``trex_training.json``), or None.
    """

    model: nn.Module
    tokenizer: Any
    name: str
    adapter: str | None = None
    instance_inputs: InstanceInputs | None = None
    chat_template: bool = True
    max_length: int | None = None
    trained_with: dict[str, Any] | None = None

    @classmethod
    def wrap(cls, model: nn.Module, tokenizer: Any, name: str, adapter: str | None = None, **kwargs: Any) -> EvalModel:
        """An EvalModel for a base model or an adapter model, with its per-instance inputs wired in."""
        return cls(model.eval(), tokenizer, name, adapter, adapter_instance_inputs(model), **kwargs)

    @property
    def context_length(self) -> int:
        if self.max_length is not None:
            return self.max_length
        config = getattr(self.model, "config", None)
        return int(getattr(config, "max_position_embeddings", None) or DEFAULT_CONTEXT)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        if pad is None:
            raise EvalError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token")
        return int(pad)

    def extra_inputs(self, texts: Sequence[str], tasks: Sequence[str | None] | None = None) -> dict[str, torch.Tensor]:
        """Per-instance inputs for a batch (one row per instance), on the model's device."""
        if self.instance_inputs is None:
            return {}
        return {k: v.to(self.device) for k, v in self.instance_inputs(texts, tasks).items()}


def select_rows(inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-instance inputs of the given rows (an instance's row repeated for each of its options)."""
    return {k: v.index_select(0, rows.to(v.device)) for k, v in inputs.items()}
