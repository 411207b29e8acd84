"""Greedy generation with the KV cache: tokens/s of T-REX against unmerged peft LoRA and the base model.

    python benchmarks/bench_generate.py                          # SmolLM2-135M, batch 1 and 16, 32 new tokens
    python benchmarks/bench_generate.py --batches 1 --new-tokens 64 --threads 2
    python benchmarks/bench_generate.py --device cuda --dtype bfloat16          # a GPU run of issue 12

Every model decodes exactly --new-tokens tokens per row (``min_new_tokens``) after a --prompt-tokens prompt;
models are run round-robin per batch size for --repeats rounds and the median is the number to read.
tokens/s counts generated tokens (rows x new tokens) over the whole ``generate`` call (prefill included).
T-REX 4x8 (paper preset, intuition per row) runs with its fused path and op by op; LoRA r=32 stays unmerged, as an
adapter that is still being trained or swapped per request would be (a merged LoRA costs exactly the base).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
from _common import interleaved, load_average, summary, write_result

from trex.layer import TRexLinear
from trex.methods import METHODS, build_adapter_model
from trex.pretrained import load_base_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()

    base, tokenizer = load_base_model(args.model)
    base = base.to(device=args.device, dtype=getattr(torch, args.dtype)).eval()
    models = {"base": base}
    for method in ("lora", "trex"):
        model = build_adapter_model(copy.deepcopy(base), METHODS[method].config_class()).eval()
        with torch.no_grad():  # B starts at zero; non-zero so the adapter does real work
            for param in model.parameters():
                if param.requires_grad and param.dim() >= 2 and param.abs().sum() == 0:
                    param.normal_(std=0.02)
        models[method] = model
    op_by_op = copy.deepcopy(models["trex"])
    for module in op_by_op.modules():
        if isinstance(module, TRexLinear):
            module.fused = False
    models["trex (op by op)"] = op_by_op
    names = {
        "base": "base",
        "lora": "LoRA r=32 (unmerged)",
        "trex": "T-REX 4x8",
        "trex (op by op)": "T-REX 4x8 (op by op)",
    }

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = []
    for batch in args.batches:
        torch.manual_seed(0)
        ids = torch.randint(100, base.config.vocab_size, (batch, args.prompt_tokens)).to(args.device)
        mask = torch.ones_like(ids)

        def run(model, batch=batch, ids=ids, mask=mask):
            extra = {}
            if getattr(model, "needs_instance_inputs", False):
                extra["intuition"] = torch.rand(batch, model.adapter_config.prior_width, device=args.device)
            with torch.no_grad():
                model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=pad, **extra,
                )  # fmt: skip

        fns = {k: (lambda m=m: run(m)) for k, m in models.items()}
        times = interleaved(fns, args.repeats, warmup=1, device=args.device)
        lora = statistics.median(times["lora"])
        for key, seconds in times.items():
            median = statistics.median(seconds)
            row = {
                "batch": batch, "method": names[key], **summary(seconds),
                "tokens_per_s": batch * args.new_tokens / median, "ratio_to_lora_tokens_per_s": lora / median,
            }  # fmt: skip
            rows.append(row)
            print(f"batch {batch:3d} {names[key]:22s} {row['tokens_per_s']:8.1f} tok/s  x{lora / median:.3f} LoRA")
    write_result(
        "generate",
        {
            "config": vars(args),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "rows": rows,
        },
        out=args.out,
        device=args.device,
    )


if __name__ == "__main__":
    main()
