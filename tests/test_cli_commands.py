"""`trex configs` (the configs shipped in the package) and `trex lm-eval` (lm-eval's CLI with trex registered)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from trex.cli import app
from trex.configs import CONFIGS, list_configs
from trex.quickstart import cpu_recipe

runner = CliRunner()
REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_configs_ship_inside_the_package_and_the_clone_points_at_them() -> None:
    assert CONFIGS.is_relative_to(Path(__import__("trex").__file__).parent)
    assert REPO_CONFIGS.resolve() == CONFIGS  # one source of truth: configs/ is a link
    names = list_configs()
    assert {"tiny-cpu.yaml", "trex-smollm2-135m-cpu.yaml", "compare/smollm2-cpu.yaml", "accelerate/fsdp.yaml",
            "models/llama-2-7b.json"} <= set(names)  # fmt: skip
    assert cpu_recipe("trex").is_file() and cpu_recipe("trex").is_relative_to(CONFIGS)


def test_configs_list_show_copy(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["configs", "list"])
    assert listed.exit_code == 0 and "tiny-cpu.yaml  Tiny CPU recipe" in listed.output
    shown = runner.invoke(app, ["configs", "show", "tiny-cpu"])
    assert shown.exit_code == 0 and shown.output == (CONFIGS / "tiny-cpu.yaml").read_text()
    copied = runner.invoke(app, ["configs", "copy", "compare/smollm2-cpu", str(tmp_path)])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "smollm2-cpu.yaml").read_bytes() == (CONFIGS / "compare" / "smollm2-cpu.yaml").read_bytes()
    again = runner.invoke(app, ["configs", "copy", "compare/smollm2-cpu", str(tmp_path), "--overwrite"])
    assert again.exit_code == 0, again.output


def test_lm_eval_passes_every_argument_through(monkeypatch) -> None:
    pytest.importorskip("lm_eval")
    import lm_eval.api.registry as registry

    import trex.eval.lm_eval_model as bridge

    seen = []
    monkeypatch.setattr(bridge, "main", lambda argv: seen.append(argv))
    args = ["run", "--model", "trex", "--model_args", "pretrained=x,adapter=y", "--tasks", "copa", "--limit", "2"]
    result = runner.invoke(app, ["lm-eval", *args])
    assert result.exit_code == 0, result.output
    assert seen == [args]
    assert registry.get_model("trex") is bridge.TRexLM


def test_lm_eval_help_is_lm_evals() -> None:
    pytest.importorskip("lm_eval")
    result = runner.invoke(app, ["lm-eval", "--help"])
    assert result.exit_code == 0 and "Language Model Evaluation Harness" in result.output
