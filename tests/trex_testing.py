"""Helpers shared by the tests: tiny random causal LMs and adapter randomisation."""

from __future__ import annotations

import torch
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
