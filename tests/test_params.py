"""Parameter counts from a config JSON, against the per-module formulas of T-REX and LoRA."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trex import TRexConfig
from trex.cli import app
from trex.params import count_added_parameters, load_model_config

TINY = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 500,
}


def module_shapes(d: int, ff: int, kv: int) -> list[tuple[int, int]]:
    """(d_in, d_out) of q, k, v, o, gate, up, down in one Llama block."""
    return [(d, d), (d, kv), (d, kv), (d, d), (d, ff), (d, ff), (ff, d)]


@pytest.fixture
def tiny_config_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY))
    return path


def test_counts_match_the_formulas(tiny_config_file):
    shapes = module_shapes(64, 160, 32) * 3
    trex_per_module = [4 * d_in + 8 * d_out + 32 * d_in + 2 for d_in, d_out in shapes]  # A, B, router, two gates
    lora_per_module = [16 * (d_in + d_out) for d_in, d_out in shapes]
    counts = count_added_parameters(load_model_config(tiny_config_file), TRexConfig(), lora_ranks=(16,))
    assert [c.trainable for c in counts] == [sum(trex_per_module), sum(lora_per_module)]
    embeddings = 2 * 500 * 64
    assert counts[0].base > embeddings


def test_diagonal_counts(tiny_config_file):
    shapes = module_shapes(64, 160, 32) * 3
    expected = sum(4 * d_in + 4 * d_out + 4 * d_in + 2 for d_in, d_out in shapes)
    counts = count_added_parameters(load_model_config(tiny_config_file), TRexConfig(mode="diagonal", r_a=4, r_b=4))
    assert counts[0].trainable == expected


def test_factorised_router_counts(tiny_config_file):
    shapes = module_shapes(64, 160, 32) * 3
    expected = sum(4 * d_in + 8 * d_out + (4 + 8) * d_in + 2 for d_in, d_out in shapes)  # 12 router rows, not 32
    counts = count_added_parameters(load_model_config(tiny_config_file), TRexConfig(factorised_router=True))
    assert counts[0].trainable == expected
    result = CliRunner().invoke(app, ["params", str(tiny_config_file), "--method", "trex", "--factorised-router"])
    assert result.exit_code == 0, result.output
    assert f"{expected:,d}" in result.output and "factorised router" in result.output


def test_cli_prints_the_table(tiny_config_file):
    result = CliRunner().invoke(app, ["params", str(tiny_config_file), "--lora-rank", "8"])
    assert result.exit_code == 0, result.output
    assert "T-REX 4x8 grid" in result.output and "LoRA r=8" in result.output


def test_cli_names_a_bad_config(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"hidden_size": 3}))
    result = CliRunner().invoke(app, ["params", str(bad)])
    assert result.exit_code != 0
    flat = " ".join(result.output.replace("│", " ").split())  # rich wraps the message inside a box
    assert "has no 'model_type' field" in flat
