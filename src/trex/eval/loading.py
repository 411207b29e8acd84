"""Load what `trex eval` evaluates: a base model alone, or a base model plus an adapter folder.

Adapter folders are checked before any weight is read, so a wrong path or a folder made for another base model
fails with a message that names the folder and the problem rather than a shape error deep in a forward.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from trex.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, TRexConfig
from trex.eval.errors import EvalError
from trex.eval.lm import EvalModel
from trex.pretrained import DEFAULT_MODEL, load_base_model, resolve_model_path

logger = logging.getLogger(__name__)

REQUIRED_ADAPTER_FILES = (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME)


def check_adapter_folder(adapter: Path, base_name: str) -> TRexConfig:
    """The adapter's config, after checking the folder has its files; warns when it names another base model."""
    if not adapter.is_dir():
        raise EvalError(f"adapter folder {adapter} does not exist")
    missing = [name for name in REQUIRED_ADAPTER_FILES if not (adapter / name).is_file()]
    if missing:
        raise EvalError(f"adapter folder {adapter} is missing {', '.join(missing)}; is it a T-REX adapter folder?")
    try:
        config = TRexConfig.load(adapter / ADAPTER_CONFIG_NAME)
    except (ValueError, FileNotFoundError) as err:
        raise EvalError(str(err)) from None
    recorded = config.base_model_name_or_path
    if recorded and recorded not in {base_name, resolve_model_path(base_name)}:
        logger.warning(
            "adapter %s was trained on %r, not on %r; its weights are checked against this model's shapes",
            adapter, recorded, base_name,
        )  # fmt: skip
    return config


def load_eval_model(
    model: str = DEFAULT_MODEL,
    adapter: Path | str | None = None,
    chat_template: bool = True,
    max_length: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> EvalModel:
    """The base model `model` (the offline SmolLM2 default, a local folder or a hub id), with the T-REX adapter
    in `adapter` and its intuition bank when given, ready for `evaluate`."""
    from trex.model import TRexModel

    adapter_path = Path(adapter) if adapter is not None else None
    if adapter_path is not None:
        check_adapter_folder(adapter_path, model)
    base, tokenizer = load_base_model(model, dtype=dtype)
    if adapter_path is None:
        return EvalModel.wrap(base, tokenizer, model, chat_template=chat_template, max_length=max_length)
    try:
        trex = TRexModel.from_pretrained(base, adapter_path)
    except (ValueError, FileNotFoundError) as err:
        raise EvalError(f"cannot load adapter {adapter_path} onto {model}: {err}") from None
    return EvalModel.wrap(
        trex, tokenizer, model, str(adapter_path), chat_template=chat_template, max_length=max_length
    )
