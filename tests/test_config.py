"""TRexConfig validation and its JSON form."""

from __future__ import annotations

import json

import pytest

from trex import TRexConfig


def test_defaults_are_the_papers():
    config = TRexConfig()
    assert (config.r_a, config.r_b, config.mode, config.preset) == (4, 8, "grid", "paper")
    assert config.n_experts == 32 and config.intuition_width == 32
    assert (config.token_coefficient, config.intuition_coefficient, config.gate_sharpness) == (32.0, 4.0, 100.0)
    assert TRexConfig(mode="diagonal", r_a=6, r_b=6).n_experts == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(r_a=0), "TRexConfig.r_a must be a positive integer, got 0"),
        (dict(r_b=2.5), "TRexConfig.r_b must be a positive integer, got 2.5"),
        (dict(mode="cube"), "TRexConfig.mode must be 'grid' or 'diagonal', got 'cube'"),
        (dict(mode="diagonal"), r"r_a must equal r_b \(got r_a=4, r_b=8\)"),
        (dict(preset="fancy"), "TRexConfig.preset must be 'paper' or 'clean', got 'fancy'"),
        (dict(n_clusters=16), "n_clusters=16 differs from the number of experts \\(32\\); set intuition_mapping=True"),
        (dict(dropout=1.5), r"TRexConfig.dropout must be in \[0, 1\), got 1.5"),
        (dict(target_modules="q_proj("), "TRexConfig.target_modules is not a valid regex: 'q_proj\\('"),
        (dict(target_modules=[]), "TRexConfig.target_modules must be None, a regex or a non-empty list"),
        (dict(gate_sharpness=0), "TRexConfig.gate_sharpness must be positive, got 0"),
    ],
)
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TRexConfig(**kwargs)


def test_mapping_allows_a_different_number_of_clusters():
    config = TRexConfig(n_clusters=16, intuition_mapping=True)
    assert config.intuition_width == 16 and config.n_experts == 32


def test_json_round_trip_and_unknown_keys(tmp_path):
    config = TRexConfig(preset="clean", target_modules=["q_proj"], dropout=0.1)
    path = tmp_path / "adapter_config.json"
    config.save(path)
    data = json.loads(path.read_text())
    assert data["peft_type"] == "TREX" and data["preset"] == "clean"
    assert TRexConfig.load(path) == config
    data["r_bb"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="T-REX config: unknown key 'r_bb'; did you mean 'r_b'"):
        TRexConfig.load(path)
    path.write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ValueError, match="is not a T-REX adapter config \\(peft_type='LORA'"):
        TRexConfig.load(path)
