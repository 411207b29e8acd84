"""Evaluation throughput (instances/s): trex's loglik scoring against lm-eval's HF backend on the same requests.

    python benchmarks/bench_eval.py                                   # copa piqa boolq hellaswag, 24 each, 1 thread
    python benchmarks/bench_eval.py --previous 6ea75bf --threads 2    # also the loglik.py of an older commit
    python benchmarks/bench_eval.py --tasks multirc                    # paragraphs shared across instances

Requests are built once per task in the cloze format (the options are the answer texts: the shape where running
the prompt once matters) from the data under --data-root, then every mode scores the same (context, option)
pairs, interleaved over --repeats rounds after a burn-in, and the median instances/s is the number to read:

- ``trex``: ``score_continuations`` (prompt once, KV cache shared by the options, options grouped by length; a
  paragraph that consecutive instances start with runs once, as on MultiRC);
- ``trex per-option``: the same code with every option paying for its own prompt;
- ``trex previous``: ``src/trex/eval/loglik.py`` as it was at git revision --previous (before this work);
- ``lm-eval hf``: lm-evaluation-harness' ``HFLM.loglikelihood`` on the same model object and the same strings.

Every mode's option scores are compared to lm-eval's and to a float64 reference (one unpadded full forward per
option of a float64 copy of the model, untimed): max absolute difference in nats, recorded per mode. The float64
column says which float32 computation is closer to exact, where lm-eval and trex differ.
One JSON per run goes to benchmarks/results/ (or --out).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _common import cloze_items, interleaved, load_average, summary, write_result

from trex.eval import LoglikItem, encode_pair, load_eval_model, score_continuations

SHAPES = {"copa": "two-option cloze", "piqa": "two-option cloze", "boolq": "two-option cloze",
          "hellaswag": "four-option cloze (HellaSwag)"}  # fmt: skip
OTHER_SHAPES = {"multirc": "two-option cloze, questions on a shared paragraph"}
"""Run with --tasks: shapes outside the default run (and its targets)."""


def previous_loglik(rev: str):
    """``trex.eval.loglik`` as it was at git revision ``rev``, imported as a separate module."""
    root = Path(__file__).parents[1]
    source = subprocess.run(
        ["git", "show", f"{rev}:src/trex/eval/loglik.py"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "loglik_previous.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("loglik_previous", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["loglik_previous"] = module
    spec.loader.exec_module(module)
    return module


def lm_eval_scorer(lm, batch_size: int):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    hf = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size, max_length=lm.context_length)

    def score(items: list[LoglikItem]) -> list[list[float]]:
        requests = [
            Instance(request_type="loglikelihood", doc={}, arguments=(item.context, option), idx=j)
            for item in items
            for j, option in enumerate(item.continuations)
        ]
        flat = iter(hf.loglikelihood(requests, disable_tqdm=True))
        return [[next(flat)[0] for _ in item.continuations] for item in items]

    return score


@torch.no_grad()
def float64_scores(model64, tokenizer, items: list[LoglikItem]) -> list[list[float]]:
    """Each option's log-likelihood from one unpadded forward of context + option through a float64 model."""
    scores = []
    for item in items:
        per_option = []
        for option in item.continuations:
            context, continuation = encode_pair(tokenizer, item.context, option)
            logits = model64(input_ids=torch.tensor([context + continuation])).logits[0]
            logp = torch.log_softmax(logits[len(context) - 1 : -1], dim=-1)
            per_option.append(float(logp.gather(1, torch.tensor(continuation)[:, None]).sum()))
        scores.append(per_option)
    return scores


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for p, q in zip(a, b, strict=True) for x, y in zip(p, q, strict=True))


def trex_scorer(lm, batch_size: int, share_prefix: bool = True, module=None):
    fn = score_continuations if module is None else module.score_continuations

    def score(items: list[LoglikItem]) -> list[list[float]]:
        scores, _ = fn(lm, items, batch_size, share_prefix=share_prefix)
        return [[s.logprob for s in per_item] for per_item in scores]

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", nargs="+", default=list(SHAPES))
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=str(Path(__file__).parents[2] / "shared" / "data"))
    parser.add_argument("--previous", default=None, help="git revision whose loglik.py to time as well")
    parser.add_argument("--no-lm-eval", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()

    lm = load_eval_model(args.model)
    scorers = {"trex": trex_scorer(lm, args.batch_size), "trex per-option": trex_scorer(lm, args.batch_size, False)}
    if args.previous:
        scorers["trex previous"] = trex_scorer(lm, args.batch_size, module=previous_loglik(args.previous))
    if not args.no_lm_eval:
        scorers["lm-eval hf"] = lm_eval_scorer(lm, args.batch_size)
    model64 = copy.deepcopy(lm.model).double()
    rows, shapes = [], {**SHAPES, **OTHER_SHAPES}
    for task in args.tasks:
        items = cloze_items(lm, task, args.data_root, args.limit)
        scores = {name: fn(items) for name, fn in scorers.items()}  # also the burn-in
        exact = float64_scores(model64, lm.tokenizer, items)
        reference = scores.get("lm-eval hf", scores["trex per-option"])
        fns = {name: (lambda fn=fn, items=items: fn(items)) for name, fn in scorers.items()}
        times = interleaved(fns, args.repeats, warmup=0)
        base = statistics.median(times["lm-eval hf"]) if "lm-eval hf" in times else None
        for name, seconds in times.items():
            diff, diff64 = max_abs_diff(scores[name], reference), max_abs_diff(scores[name], exact)
            median = statistics.median(seconds)
            row = {
                "task": task, "shape": shapes.get(task, "cloze"), "mode": name, "instances": len(items),
                "options": sum(len(i.continuations) for i in items), **summary(seconds),
                "instances_per_s": len(items) / median, "speedup_vs_lm_eval": None if base is None else base / median,
                "max_abs_diff_vs_reference": diff, "max_abs_diff_vs_float64": diff64,
            }  # fmt: skip
            rows.append(row)
            speed = "" if base is None else f"x{row['speedup_vs_lm_eval']:.2f} lm-eval"
            print(
                f"{task:10s} {name:16s} {row['instances_per_s']:7.2f} inst/s {speed}  max|Δ| {diff:.2e} {diff64:.2e}"
            )
    write_result(
        "eval",
        {
            "config": {**vars(args), "format": "cloze", "reference_scores": "lm-eval hf"},
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "rows": rows,
        },
        out=args.out,
    )


if __name__ == "__main__":
    main()
