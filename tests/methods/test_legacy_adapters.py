"""Adapters written by trex 0.1.0 (before the methods framework) load and give the logits they gave then.

Each fixture folder holds an adapter with its intuition bank (fitted with the FakeEmbedder, dim 32) and
``expected.safetensors``: input ids, the intuition rows of ``expected_prompts.json`` and the logits trex 0.1.0
computed on ``tiny_llama(0)``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from intuition.fakes import FakeEmbedder
from safetensors.torch import load_file
from trex_testing import tiny_llama

from trex import TRexModel
from trex.intuition import IntuitionBank
from trex.methods import load_adapter_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-0.1.0"
FOLDERS = [pytest.param(FIXTURES / name, id=name) for name in ("paper-grid", "clean-diagonal-mapped")]


def expected(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "expected.safetensors")


def run(model, data: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=data["input_ids"], **kwargs).logits


@pytest.mark.parametrize("folder", FOLDERS)
def test_from_pretrained_gives_the_logits_of_0_1_0(folder: Path):
    data = expected(folder)
    model = TRexModel.from_pretrained(tiny_llama(0), folder)
    assert json.loads((folder / "adapter_config.json").read_text())["trex_version"] == "0.1.0"
    assert model.adapter_config.method == "trex" and model.intuition_bank is not None
    torch.testing.assert_close(run(model, data, intuition=data["intuition"]), data["logits"], rtol=0, atol=1e-6)
    with model.disable_adapter():
        torch.testing.assert_close(run(model, data), run(tiny_llama(0), data), rtol=0, atol=0)


@pytest.mark.parametrize("folder", FOLDERS)
def test_load_adapter_model_dispatches_a_0_1_0_folder_to_trex(folder: Path):
    data = expected(folder)
    model = load_adapter_model(tiny_llama(0), folder)
    assert type(model) is TRexModel
    torch.testing.assert_close(run(model, data, intuition=data["intuition"]), data["logits"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_saved_bank_routes_the_recorded_prompts(folder: Path):
    data = expected(folder)
    prompts = json.loads((folder / "expected_prompts.json").read_text())
    bank = IntuitionBank.load(folder / "intuition", embedder=FakeEmbedder(dim=32))
    torch.testing.assert_close(bank.score(prompts), data["intuition"], rtol=0, atol=1e-6)
    model = TRexModel.from_pretrained(tiny_llama(0), folder, intuition_bank=bank)
    torch.testing.assert_close(run(model, data, intuition_text=prompts), data["logits"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_0_1_0_adapter_resaved_by_this_release_still_loads(folder: Path, tmp_path):
    data = expected(folder)
    legacy = tmp_path / "legacy"
    shutil.copytree(folder, legacy)
    TRexModel.from_pretrained(tiny_llama(0), legacy).save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "adapter_config.json").read_text())
    assert saved["method"] == "trex" and saved["peft_type"] == "TREX"
    assert (tmp_path / "new" / "intuition" / "centroids.safetensors").is_file()
    model = load_adapter_model(tiny_llama(0), tmp_path / "new")
    torch.testing.assert_close(run(model, data, intuition=data["intuition"]), data["logits"], rtol=0, atol=1e-6)
