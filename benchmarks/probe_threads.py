"""How long one small elementwise op takes with 1 and with 2 torch threads on this machine, now.

    python benchmarks/probe_threads.py

On a 2-core machine that other processes keep busy, an op big enough for PyTorch to split over 2 threads
(more than 32,768 elements) waits until the second thread is scheduled; the wait, not the arithmetic, is then
what an op costs. This probe times ``x * 2`` and a softmax on 2,048 x 32 floats (one layer's routing tensor at
2,048 tokens) and on 512 x 32 (below the split size) at 1 and 2 threads, interleaved, and writes one JSON.
"""

from __future__ import annotations

import statistics

import torch
from _common import interleaved, load_average, write_result


def main() -> None:
    load_before = load_average()
    rows = []
    big, small = torch.randn(2048, 32), torch.randn(512, 32)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fns = {
            "mul 2048x32": lambda: big * 2.0,
            "softmax 2048x32": lambda: torch.softmax(big, -1),
            "mul 512x32": lambda: small * 2.0,
        }
        for name, seconds in interleaved(fns, 200, warmup=5).items():
            rows.append({"threads": threads, "op": name, "median_us": statistics.median(seconds) * 1e6})
            print(f"{threads} thread(s) {name:18s} {rows[-1]['median_us']:9.1f} us")
    write_result("threads", {"config": {}, "load_average_before": load_before, "load_average_after": load_average(),
                             "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
