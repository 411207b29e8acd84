"""Data for multitask training and evaluation: the suite's task registry, prompts, mixture and tokenisation.

Typical use::

    from trex.data import build_mixture, list_tasks, load_task, render, tokenize_instances
    tasks = {name: load_task(name, "train") for name in list_tasks("train")}
    mixture = build_mixture(tasks, caps=200, seed=0)
    examples, report = tokenize_instances(mixture, "letters", tokenizer, max_length=512)

Data root resolution (`resolve_data_root`): explicit `data_root` argument > `$TREX_DATA` > the subset shipped
in the package. See docs/data.md for the registry table, split choices and the user JSONL schema.
"""

from trex.data.errors import DataError
from trex.data.hf import load_hf_task
from trex.data.instance import RenderedPrompt, TaskInstance
from trex.data.mixture import build_mixture, mixture_summary_text, mixture_table
from trex.data.registry import (
    BBH_TASKS,
    DATA_ENV_VAR,
    REGISTRY,
    SHIPPED_DATA,
    TaskSpec,
    get_task,
    list_tasks,
    load_task,
    resolve_data_root,
)
from trex.data.templates import FORMATS, intuition_text, render
from trex.data.tokenize import (
    IGNORE_INDEX,
    TokenizationReport,
    TokenizedExample,
    model_strings,
    tokenize_for_training,
    tokenize_instances,
)
from trex.data.user import load_jsonl_task

__all__ = [
    "BBH_TASKS",
    "DATA_ENV_VAR",
    "FORMATS",
    "IGNORE_INDEX",
    "REGISTRY",
    "SHIPPED_DATA",
    "DataError",
    "RenderedPrompt",
    "TaskInstance",
    "TaskSpec",
    "TokenizationReport",
    "TokenizedExample",
    "build_mixture",
    "get_task",
    "intuition_text",
    "list_tasks",
    "load_hf_task",
    "load_jsonl_task",
    "load_task",
    "mixture_summary_text",
    "mixture_table",
    "model_strings",
    "render",
    "resolve_data_root",
    "tokenize_for_training",
    "tokenize_instances",
]
