"""Evaluation throughput (instances/s) on SmolLM2-135M: loglik with and without prompt sharing, and generate.

    python benchmarks/bench_eval.py                                  # copa piqa siqa hellaswag, 16 each
    python benchmarks/bench_eval.py --tasks copa boolq --limit 32 --data-root ../shared/data --threads 2

Requests are built once per task and format; every mode then scores the same requests, interleaved over
--repeats rounds after a burn-in batch, and the median instances/s is the number to read. Modes:
`loglik-shared` (prompt run once per instance, KV cache repeated over its options: what `trex eval` does),
`loglik-per-option` (every option pays for its own prompt), `generate` (greedy answer letter, letters only).
One JSON per run goes to benchmarks/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from trex.data import load_task
from trex.eval import LoglikItem, load_eval_model, score_continuations
from trex.eval.environment import environment
from trex.eval.generate import generate_answers
from trex.eval.requests import build_requests


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", nargs="+", default=["copa", "piqa", "siqa", "hellaswag"])
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lm = load_eval_model(args.model)
    rows = []
    for fmt in ("letters", "cloze"):
        requests = [
            r
            for task in args.tasks
            for r in build_requests(task, load_task(task, "eval", args.data_root, args.limit), fmt, lm.tokenizer,
                                    lm.chat_template, lm.context_length).requests
        ]  # fmt: skip
        items = [LoglikItem(r.prompt, r.options, r.intuition_text) for r in requests]
        modes = {
            "loglik-shared": lambda items=items: score_continuations(lm, items, args.batch_size, share_prefix=True),
            "loglik-per-option": lambda items=items: score_continuations(lm, items, args.batch_size, False),
        }
        if fmt == "letters":
            modes["generate"] = lambda requests=requests: generate_answers(lm, requests, args.batch_size)
        score_continuations(lm, items[: args.batch_size], args.batch_size)  # burn-in
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode, fn in modes.items():
                times[mode].append(_timed(fn))
        for mode, seconds in times.items():
            median = statistics.median(seconds)
            rows.append({"format": fmt, "mode": mode, "instances": len(requests), "median_s": median,
                         "instances_per_s": len(requests) / median, "all_s": seconds})  # fmt: skip
            print(f"{fmt:8s} {mode:18s} {len(requests) / median:7.2f} instances/s  (median of {seconds})")
    record = {
        "benchmark": "bench_eval", "model": args.model, "tasks": args.tasks, "limit": args.limit,
        "batch_size": args.batch_size, "threads": args.threads, "rows": rows, **environment(lm.device),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_eval-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
