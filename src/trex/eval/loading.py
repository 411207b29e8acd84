"""Load what `trex eval` evaluates: a base model alone, or a base model plus any method's adapter folder.

Adapter folders are checked before any weight is read, so a wrong path or a folder made for another base model
fails with a message that names the folder and the problem rather than a shape error deep in a forward.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from trex.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME
from trex.eval.errors import EvalError
from trex.eval.lm import EvalModel
from trex.methods import Method, load_adapter_model, method_of_config
from trex.methods.config import read_config_file
from trex.pretrained import DEFAULT_MODEL, load_base_model, resolve_model_path

logger = logging.getLogger(__name__)

REQUIRED_ADAPTER_FILES = (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME)


def check_adapter_folder(adapter: Path, base_name: str) -> Method:
    """The adapter's method, after checking the folder has its files; warns when it names another base model."""
    if not adapter.is_dir():
        raise EvalError(f"adapter folder {adapter} does not exist")
    missing = [name for name in REQUIRED_ADAPTER_FILES if not (adapter / name).is_file()]
    if missing:
        raise EvalError(f"adapter folder {adapter} is missing {', '.join(missing)}; is it an adapter folder?")
    try:
        data = read_config_file(adapter / ADAPTER_CONFIG_NAME)
        method = method_of_config(data, source=str(adapter / ADAPTER_CONFIG_NAME))
        if method.name != "lora":
            method.config_class.load(adapter / ADAPTER_CONFIG_NAME)  # every field type-checked before any weight
    except (ValueError, FileNotFoundError) as err:
        raise EvalError(str(err)) from None
    recorded = data.get("base_model_name_or_path")
    if recorded and recorded not in {base_name, resolve_model_path(base_name)}:
        logger.warning(
            "adapter %s was trained on %r, not on %r; its weights are checked against this model's shapes",
            adapter, recorded, base_name,
        )  # fmt: skip
    return method


def load_eval_model(
    model: str = DEFAULT_MODEL,
    adapter: Path | str | None = None,
    chat_template: bool = True,
    max_length: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> EvalModel:
    """The base model `model` (the offline SmolLM2 default, a local folder or a hub id), with the adapter in
    `adapter` (any method's folder, a plain peft LoRA folder included) when given, ready for `evaluate`."""
    adapter_path = Path(adapter) if adapter is not None else None
    if adapter_path is not None:
        check_adapter_folder(adapter_path, model)
    base, tokenizer = load_base_model(model, dtype=dtype)
    if adapter_path is None:
        return EvalModel.wrap(base, tokenizer, model, chat_template=chat_template, max_length=max_length)
    try:
        tuned = load_adapter_model(base, adapter_path)
    except (ValueError, FileNotFoundError) as err:
        raise EvalError(f"cannot load adapter {adapter_path} onto {model}: {err}") from None
    return EvalModel.wrap(
        tuned, tokenizer, model, str(adapter_path), chat_template=chat_template, max_length=max_length
    )
