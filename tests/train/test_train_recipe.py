"""Recipes: every shipped YAML parses, and bad keys, values and overrides are named before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trex.train.recipe import load_recipe, recipe_from_dict
from trex.train.run import gradient_accumulation

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_parses_and_says_how_to_launch_it(path):
    recipe = load_recipe(path)
    first_lines = path.read_text().splitlines()[:8]
    assert first_lines[0].startswith("#")
    assert any(f"trex train configs/{path.name}" in line for line in first_lines)
    assert recipe.training.global_batch_size % recipe.training.per_device_batch_size == 0


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_yaml_with_a_launch_line(path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)
    assert "accelerate launch --config_file configs/accelerate/" in path.read_text()


def test_paper_recipes_use_the_papers_hyper_parameters():
    for path in CONFIGS.glob("paper-*.yaml"):
        recipe = load_recipe(path)
        assert (recipe.adapter.r_a, recipe.adapter.r_b, recipe.adapter.mode) == (4, 8, "grid")
        assert recipe.training.learning_rate == 5e-5 and recipe.training.num_train_epochs == 3
        assert recipe.training.global_batch_size == 64 and recipe.training.lr_scheduler_type == "cosine"
        # the authors' code (train_args/llama2-13b-trex.json, component/embedder.py, component/template.py)
        assert recipe.training.max_grad_norm == 0.3 and recipe.data.max_length == 2048
        assert (recipe.data.format, recipe.data.chat_format) == ("official", "llama2-authors")
        assert (recipe.intuition.prefix, recipe.intuition.max_seq_length) == ("", 512)
        assert recipe.intuition.trust_remote_code and "nomic-embed-text-v1" in recipe.intuition.embedder


def test_overrides_are_read_as_yaml_values(tmp_path):
    recipe = load_recipe(
        CONFIGS / "tiny-cpu.yaml",
        ["training.learning_rate=2e-4", "data.tasks=[copa]", "output_dir=elsewhere", "training.bf16=true"],
    )
    assert recipe.training.learning_rate == 2e-4 and recipe.data.tasks == ["copa"]
    assert recipe.output_dir == "elsewhere" and recipe.training.bf16 is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trainig": {}}, "x.yaml: unknown key 'trainig'; did you mean 'training'"),
        (
            {"training": {"learnig_rate": 1}},
            "x.yaml: training: unknown key 'learnig_rate'; did you mean 'learning_rate'",
        ),
        ({"training": {"learning_rate": "fast"}}, "x.yaml: training.learning_rate: expected a number, got 'fast'"),
        ({"data": {"format": "xml"}}, r"x.yaml: data.format: 'xml' is not one of \['letters', 'cloze', 'official'\]"),
        ({"adapter": {"r_aa": 2}}, "x.yaml: adapter: unknown key 'r_aa'; did you mean 'r_a'"),
        ({"adapter": {"mode": "diagonal"}}, "x.yaml: adapter: TRexConfig: diagonal mode pairs a_i with b_i"),
        ({"data": {"tasks": "copa"}}, "x.yaml: data.tasks: expected a list, got 'copa'"),
    ],
)
def test_bad_recipes_are_named(data, message):
    with pytest.raises(ValueError, match=message):
        recipe_from_dict(data, source="x.yaml")


def test_bad_override_and_missing_or_broken_files(tmp_path):
    with pytest.raises(ValueError, match="must look like section.key=value"):
        load_recipe(CONFIGS / "tiny-cpu.yaml", ["training.max_steps"])
    with pytest.raises(FileNotFoundError, match="no recipe at"):
        load_recipe(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed")
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML"):
        load_recipe(broken)


def test_global_batch_must_split_over_micro_batches():
    recipe = recipe_from_dict({"training": {"global_batch_size": 10, "per_device_batch_size": 4}})
    with pytest.raises(ValueError, match="global_batch_size=10 is not a multiple of per_device_batch_size=4"):
        gradient_accumulation(recipe)
