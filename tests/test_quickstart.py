"""The quickstart's plumbing on the tiny model: train with a method's recipe, evaluate base and adapter, re-run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import trex.quickstart as quickstart_module

TINY_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"


@pytest.mark.parametrize("method", ["trex", "lora"])
def test_quickstart_trains_evaluates_and_reuses(tmp_path, monkeypatch, method):
    data = yaml.safe_load(TINY_RECIPE.read_text())
    if method == "lora":
        data["adapter"] = {"method": "lora", "r": 4}
    recipe = tmp_path / f"{method}.yaml"
    recipe.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(quickstart_module, "cpu_recipe", lambda name: recipe)
    monkeypatch.setattr(quickstart_module, "DEFAULT_MODEL", "tiny-random-llama")
    monkeypatch.setattr(quickstart_module, "QUICKSTART_OVERRIDES", ["data.max_per_task=4", "training.max_steps=2"])
    out = tmp_path / "run"
    adapter_dir = quickstart_module.quickstart(out, eval_limit=2, method=method)
    report = (out / "quickstart.md").read_text()
    assert (adapter_dir / "adapter_config.json").is_file()
    assert report.count("| SmolLM2-135M |") == 2 and "### Scoring: loglik" in report
    label = "LoRA r=4" if method == "lora" else "T-REX 2x4 grid"
    assert report.count(f"+ {label}") == 2
    again = quickstart_module.quickstart(out, eval_limit=2, method=method)  # reuses the run and finished evaluations
    assert again == adapter_dir and (out / "quickstart.md").read_text() == report
