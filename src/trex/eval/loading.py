"""Load what `trex eval` evaluates: a base model alone, or a base model plus any method's adapter folder.

Adapter folders are checked before any weight is read, so a wrong path or a folder made for another base model
fails with a message that names the folder and the problem rather than a shape error deep in a forward.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from trex.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME
from trex.data.chat_formats import apply_chat_format
from trex.eval.errors import EvalError
from trex.eval.lm import EvalModel
from trex.methods import Method, load_adapter_model, method_of_config
from trex.methods.config import read_config_file
from trex.pretrained import DEFAULT_MODEL, load_base_model, resolve_model_path

TRAINING_RECORD = "trex_training.json"
"""Written by ``trex train`` beside the adapter (``trex.train.run.write_training_record``)."""

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


def training_record(adapter: Path) -> dict[str, Any] | None:
    """The prompt settings the adapter was trained with (``trex_training.json``), None for folders without one."""
    path = adapter / TRAINING_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise EvalError(f"{path} is damaged ({err}); delete it to evaluate with explicit settings") from None
    if not isinstance(record, dict):
        raise EvalError(f"{path} holds no settings object")
    return record


def settled(name: str, given: Any, record: dict[str, Any] | None, default: Any) -> Any:
    """The value of a prompt setting: the caller's, else the adapter's recorded one, else the default; a caller's
    value that differs from what the adapter learnt is allowed, with a warning (it measures another protocol)."""
    recorded = None if record is None else record.get(name)
    if given is None:
        return default if recorded is None else recorded
    if recorded is not None and given != recorded:
        logger.warning(
            "the adapter was trained with %s=%r; evaluating with %s=%r as asked", name, recorded, name, given
        )
    return given


def load_eval_model(
    model: str = DEFAULT_MODEL,
    adapter: Path | str | None = None,
    chat_template: bool | None = None,
    max_length: int | None = None,
    dtype: torch.dtype = torch.float32,
    chat_format: str | None = None,
) -> EvalModel:
    """The base model `model` (the offline SmolLM2 default, a local folder or a hub id), with the adapter in
    `adapter` (any method's folder, a plain peft LoRA folder included) when given, ready for `evaluate`.

    `chat_template` and `chat_format` default to what the adapter recorded at training (else: the tokenizer's
    own template); the prompt format is settled the same way by `trex.eval.runner.resolve_format`.
    """
    adapter_path = Path(adapter) if adapter is not None else None
    record = None
    if adapter_path is not None:
        check_adapter_folder(adapter_path, model)
        record = training_record(adapter_path)
    chat_template = settled("chat_template", chat_template, record, True)
    chat_format = settled("chat_format", chat_format, record, None)
    base, tokenizer = load_base_model(model, dtype=dtype)
    try:
        apply_chat_format(tokenizer, chat_format)
    except ValueError as err:
        raise EvalError(str(err)) from None
    options = {"chat_template": chat_template, "max_length": max_length, "trained_with": record}
    if adapter_path is None:
        return EvalModel.wrap(base, tokenizer, model, **options)
    try:
        tuned = load_adapter_model(base, adapter_path)
    except (ValueError, FileNotFoundError) as err:
        raise EvalError(f"cannot load adapter {adapter_path} onto {model}: {err}") from None
    return EvalModel.wrap(tuned, tokenizer, model, str(adapter_path), **options)
