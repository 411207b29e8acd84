"""Training any method: the dataset and collator carry ``intuition`` only for methods that take it, and
``run_training`` trains the methods without intuition without fitting (or embedding for) a bank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from trex.data import tokenize_instances
from trex.methods import build_adapter_model, load_adapter_model
from trex.pretrained import tiny_random_llama
from trex.train.dataset import IntuitionCollator, IntuitionExamples, build_training_mixture
from trex.train.recipe import load_recipe
from trex.train.run import instance_priors, run_training

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
# the category of each task of tiny-cpu.yaml, from docs/methods.md (examination, language, knowledge,
# understanding, reasoning)
CATEGORY_INDEX = {"copa": 4, "boolq": 2, "piqa": 4}


def prepared(tmp_path: Path, adapter: str):
    recipe = load_recipe(
        RECIPE, [f"output_dir={tmp_path / 'run'}", f"intuition.cache_dir={tmp_path / 'cache'}", f"adapter={adapter}"]
    )
    model, tokenizer = tiny_random_llama()
    mixture, _ = build_training_mixture(recipe.data)
    examples, _ = tokenize_instances(mixture, recipe.data.format, tokenizer, recipe.data.max_length)
    adapter_model = build_adapter_model(model, recipe.adapter)
    priors = instance_priors(recipe, adapter_model, mixture, examples, tmp_path / "run")
    return recipe, examples, priors, IntuitionCollator(tokenizer.pad_token_id)


@pytest.mark.parametrize(
    "adapter",
    [
        pytest.param("{method: lora, r: 4}", id="lora"),
        pytest.param("{method: molora, n_experts: 4, r: 2}", id="molora"),
        pytest.param("{method: sira, n_experts: 4, r: 2}", id="sira"),
        pytest.param("{method: trex, r_a: 2, r_b: 4, use_intuition: false}", id="trex-no-intuition"),
    ],
)
def test_methods_without_a_prior_get_no_intuition_in_their_batches(tmp_path, adapter):
    _, examples, priors, collator = prepared(tmp_path, adapter)
    assert priors is None
    dataset = IntuitionExamples(examples, priors)
    batch = collator([dataset[i] for i in range(3)])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()  # no bank, nothing embedded


def test_task_category_prior_rows_are_each_instance_s_category(tmp_path):
    adapter = "{method: trex, r_a: 2, r_b: 4, intuition_source: task_category, intuition_mapping: true}"
    _, examples, priors, collator = prepared(tmp_path, adapter)
    assert priors is not None and priors.shape == (len(examples), 5)
    expected = torch.zeros(len(examples), 5)
    for row, example in enumerate(examples):
        expected[row, CATEGORY_INDEX[example.task]] = 1.0
    torch.testing.assert_close(priors, expected, rtol=0, atol=0)
    dataset = IntuitionExamples(examples, priors)
    batch = collator([dataset[i] for i in range(4)])
    torch.testing.assert_close(batch["intuition"], expected[:4], rtol=0, atol=0)
    assert batch["intuition"].dtype == torch.float32
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("adapter", "aux"),
    [
        pytest.param("{method: lora, r: 4}", set(), id="lora"),
        pytest.param("{method: molora, n_experts: 4, r: 2}", set(), id="molora"),
        pytest.param("{method: sira, n_experts: 4, r: 2}", {"aux_load_balance"}, id="sira"),
        pytest.param("{method: trex, r_a: 2, r_b: 4, use_intuition: false}", set(), id="trex-no-intuition"),
    ],
)
def test_run_training_without_intuition_fits_no_bank(tmp_path, adapter, aux):
    recipe = load_recipe(
        RECIPE,
        [
            f"output_dir={tmp_path / 'run'}", f"intuition.cache_dir={tmp_path / 'cache'}", f"adapter={adapter}",
            "training.max_steps=2", "training.save_steps=10",
        ],
    )  # fmt: skip
    result = run_training(recipe)
    run = result.run_dir
    assert result.steps == 2
    assert not (run / "intuition_bank").exists() and not (result.adapter_dir / "intuition").exists()
    assert not (tmp_path / "cache").exists()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert all(torch.isfinite(torch.tensor(line["loss"])) and line["loss"] > 0 for line in lines)
    for name in aux:
        assert all(line[name] > 0 for line in lines), name
    saved_method = recipe.adapter.method
    model, _ = tiny_random_llama()
    loaded = load_adapter_model(model, result.adapter_dir)
    assert loaded.adapter_config.method == saved_method and not loaded.needs_instance_inputs
    if saved_method == "lora":  # the run's adapter is a plain peft folder
        assert isinstance(PeftModel.from_pretrained(tiny_random_llama()[0], result.adapter_dir), PeftModel)
    # the trained adapter moved away from its no-op start
    ids = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted = loaded(input_ids=ids).logits
        with loaded.disable_adapter():
            base = loaded(input_ids=ids).logits
    assert (adapted - base).abs().max() > 0
