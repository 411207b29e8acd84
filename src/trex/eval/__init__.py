"""Evaluation: accuracy on the paper's 14 tasks and BBH, by greedy generation or option log-likelihood.

Typical use::

    from trex.eval import evaluate, load_eval_model, table1
    lm = load_eval_model("smollm2-135m", adapter="runs/quickstart/adapter")
    run = evaluate(lm, ["suite"], scoring="loglik", limit=100, output_dir="runs/eval")
    print(run.markdown())                       # Table 1 row + per-task details
    print(table1([("base", base_run.results), ("T-REX", run.results)]))

A model already in memory (a trained `TRexModel` with its bank, or a base model) is wrapped with
``EvalModel.wrap(model, tokenizer, name)``. See docs/eval.md.
"""

from trex.eval.errors import EvalError
from trex.eval.lm import EvalModel, InstanceInputs, adapter_instance_inputs, trex_instance_inputs
from trex.eval.loading import load_eval_model
from trex.eval.loglik import LoglikItem, OptionScore, encode_pair, score_continuations
from trex.eval.report import TABLE1_COLUMNS, detail_table, table1
from trex.eval.requests import EvalRequest, build_requests, read_requests, write_requests
from trex.eval.runner import EvalRun, evaluate, resolve_tasks
from trex.eval.scoring import SCORINGS, TaskResult

__all__ = [
    "SCORINGS",
    "TABLE1_COLUMNS",
    "EvalError",
    "EvalModel",
    "EvalRequest",
    "EvalRun",
    "InstanceInputs",
    "LoglikItem",
    "OptionScore",
    "TaskResult",
    "build_requests",
    "detail_table",
    "encode_pair",
    "evaluate",
    "load_eval_model",
    "read_requests",
    "resolve_tasks",
    "score_continuations",
    "table1",
    "adapter_instance_inputs",
    "trex_instance_inputs",
    "write_requests",
]
