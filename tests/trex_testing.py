"""Helpers shared by the tests: tiny random causal LMs and adapter randomisation."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB = 1000
ADAPTER_MARKERS = ("trex_", "molora_", "lora_")
"""Substrings that mark the adapter parameters of each method (T-REX, MoLoRA/SiRA, peft's LoRA)."""


def tiny_llama(seed: int = 0, hidden: int = 64, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def randomize_adapter(model: torch.nn.Module, seed: int = 1) -> None:
    """Give every adapter parameter non-trivial values (B and router start at zero, which hides bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(prefix in name for prefix in ADAPTER_MARKERS):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.1)


TINY_COMPARISON = {
    "recipe": {
        "model": {"name_or_path": "tiny-random-llama"},
        "data": {"tasks": ["copa", "boolq"], "max_per_task": 8, "max_length": 256, "format": "cloze"},
        "intuition": {"seed": 0},
        "training": {
            "learning_rate": 1.0e-3,
            "max_steps": 2,
            "global_batch_size": 4,
            "per_device_batch_size": 4,
            "warmup_steps": 0,
            "logging_steps": 1,
            "save_steps": 1,
            "save_total_limit": 2,
            "routing_probe_size": 2,
            "routing_probe_steps": 1,
        },  # fmt: skip
    },
    "evaluation": {"tasks": ["copa", "boolq"], "limit": 4, "scoring": "loglik", "format": "cloze", "batch_size": 8},
    "methods": {
        "lora": {"seeds": [0, 1], "adapter": {"method": "lora", "r": 4, "alpha": 8}},
        "trex": {"seeds": [0, 1], "adapter": {"method": "trex", "r_a": 2, "r_b": 4}},
    },
}


def write_comparison_config(folder: Path, output_dir: Path) -> Path:
    """A two-method, two-seed comparison of tiny models (a few instances), written as YAML into `folder`."""
    data = {**TINY_COMPARISON, "output_dir": str(output_dir)}
    data["recipe"] = {**TINY_COMPARISON["recipe"], "intuition": {"seed": 0, "cache_dir": str(folder / "cache")}}
    path = folder / "compare.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def loglik_reference(model, tokenizer, context: str, continuation: str, **extra) -> float:
    """Sum of log p(token) over the continuation tokens, from one unpadded forward of the whole sequence."""
    from trex.eval import encode_pair

    context_ids, continuation_ids = encode_pair(tokenizer, context, continuation)
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, **extra).logits[0].double(), dim=-1)
    start = len(context_ids)
    return sum(float(logp[start - 1 + i, tok]) for i, tok in enumerate(continuation_ids))


def greedy_reference(model, tokenizer, prompt: str, steps: int, **extra) -> str:
    """Greedy decoding of one prompt by repeated full forwards (no padding, no cache)."""
    from trex.eval.loglik import encode_text

    ids = encode_text(tokenizer, prompt)
    new = []
    for _ in range(steps):
        with torch.no_grad():
            token = int(model(input_ids=torch.tensor([ids + new]), **extra).logits[0, -1].argmax())
        if token == tokenizer.eos_token_id:
            break
        new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)
