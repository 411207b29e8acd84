"""Token positions the loglik scorer runs per task, now and with the batching before option grouping (no timing).

    python benchmarks/count_loglik_tokens.py --limit 16 --batch-size 8

Counts, for the cloze requests of each task: prompt positions (the first pass, left-padded per batch), option
positions (the second pass: all option rows of a batch padded to the longest, before; each length group padded to
its own longest, now), the passes over options, and the positions one full forward per option would run
(lm-eval's way, padding aside). Deterministic: it only tokenises. Writes one JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import cloze_items, load_average, write_result

from trex.eval import load_eval_model
from trex.eval.loglik import _encode, _length_groups, _prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", nargs="+", default=["copa", "piqa", "boolq", "hellaswag"])
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data-root", default=str(Path(__file__).parents[2] / "shared" / "data"))
    args = parser.parse_args()
    lm = load_eval_model(args.model)
    rows = []
    for task in args.tasks:
        items = cloze_items(lm, task, args.data_root, args.limit)
        prepared = [p for i, item in enumerate(items) for p in _prepare(i, _encode(lm, item), True)]
        order = sorted(
            range(len(prepared)), key=lambda k: (-len(prepared[k].prefix), -max(map(len, prepared[k].rests)))
        )
        prompt = options_before = options_now = passes_before = passes_now = 0
        for start in range(0, len(order), args.batch_size):
            batch = [prepared[k] for k in order[start : start + args.batch_size]]
            prompt += len(batch) * max(len(p.prefix) for p in batch)
            lengths = [len(r) for p in batch for r in p.rests]
            if all(n == 1 for n in lengths):
                continue
            groups = _length_groups(lengths)
            options_before += len(lengths) * max(lengths)
            options_now += sum(len(g) * max(lengths[r] for r in g) for g in groups)
            passes_before, passes_now = passes_before + 1, passes_now + len(groups)
        full = sum(len(p.prefix) + len(r) for p in prepared for r in p.rests)
        row = {
            "task": task, "instances": len(items), "prompt_positions": prompt,
            "option_positions_before": options_before, "option_positions_now": options_now,
            "option_passes_before": passes_before, "option_passes_now": passes_now,
            "full_forward_positions": full, "bound_before": full / (prompt + options_before),
            "bound_now": full / (prompt + options_now),
        }  # fmt: skip
        rows.append(row)
        print(row)
    write_result("loglik_tokens", {"config": vars(args), "load_average_before": load_average(), "rows": rows})


if __name__ == "__main__":
    main()
