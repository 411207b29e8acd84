"""LoRA goes through peft itself: trex's folder is a plain peft adapter, and peft's own folders load in trex."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from trex_testing import randomize_adapter, tiny_llama

from trex.methods import build_adapter_model, load_adapter_model
from trex.methods.lora import LoraMethodConfig, PeftLoraModel

from .cases import token_batch


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_trex_lora_folder_is_a_plain_peft_adapter(tmp_path):
    model = build_adapter_model(
        tiny_llama(0), LoraMethodConfig(r=4, alpha=8.0, target_modules=["q_proj", "down_proj"])
    )
    randomize_adapter(model)
    model.eval()
    ids = token_batch()
    expected = logits(model, ids)
    model.save_pretrained(tmp_path / "lora")
    saved = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["r"] == 4 and saved["lora_alpha"] == 8.0
    assert "method" not in saved and "files" not in saved  # nothing trex-only in peft's config
    assert not list((tmp_path / "lora").glob(".*")), "no staging leftovers"
    assert not list(tmp_path.glob(".lora.*")), "the staging folder is removed"

    torch.manual_seed(99)
    peft_model = PeftModel.from_pretrained(tiny_llama(0), tmp_path / "lora").eval()
    torch.testing.assert_close(logits(peft_model, ids), expected, rtol=0, atol=0)
    adapted = {n.rsplit(".", 1)[-1] for n, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"q_proj", "down_proj"}
    # the reference that does not go through any adapter code: LoRA merged into the base weights by peft
    merged = peft_model.merge_and_unload()
    torch.testing.assert_close(logits(merged, ids), expected, rtol=1e-4, atol=1e-4)


def test_a_folder_written_by_peft_loads_through_the_registry(tmp_path):
    peft_model = get_peft_model(
        tiny_llama(0), LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    randomize_adapter(peft_model)
    peft_model.eval()
    ids = token_batch()
    expected = logits(peft_model, ids)
    peft_model.save_pretrained(tmp_path / "peft")
    loaded = load_adapter_model(tiny_llama(0), tmp_path / "peft")
    assert isinstance(loaded, PeftLoraModel) and not loaded.needs_instance_inputs
    assert loaded.adapter_config.r == 4 and loaded.adapter_config.alpha == 16.0
    assert len(loaded.adapted_modules) == 4
    torch.testing.assert_close(logits(loaded, ids), expected, rtol=0, atol=0)
    with loaded.disable_adapter():
        torch.testing.assert_close(logits(loaded, ids), logits(tiny_llama(0), ids), rtol=0, atol=0)
    with pytest.raises(ValueError, match="LoRA takes no per-instance input"):
        loaded(input_ids=ids, intuition=torch.zeros(3, 4))
    trainable = load_adapter_model(tiny_llama(0), tmp_path / "peft", is_trainable=True)
    assert trainable.parameter_counts()[0] == 2 * (4 * (64 + 64) + 4 * (64 + 32))  # 2 layers, q 64->64, v 64->32
