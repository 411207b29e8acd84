"""Tests for the areas a planted-bug audit found unguarded (issue 13), each against an independent expectation.

- dropout > 0: it acts on the adapter input only, only in training, and a resumed run restores its RNG state;
- another seed gives another result (k-means initialisation, its sub-sample, per-task caps, the mixture);
- the key names of a saved T-REX adapter are pinned (other tools and older trex versions read them);
- acc vs acc_norm, and the guard that keeps evaluation instances out of training, without lm-eval or the suite.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from trex import TRexConfig, get_trex_model
from trex.config import ADAPTER_WEIGHTS_NAME
from trex.data import build_mixture, load_task
from trex.eval.metrics import choose
from trex.intuition.inputs import cap_per_label
from trex.intuition.kmeans import spherical_kmeans
from trex.io import load_tensors
from trex.layer import TRexLinear
from trex.pretrained import tiny_random_llama
from trex.train.recipe import load_recipe
from trex.train.run import run_training

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"

# --- dropout -------------------------------------------------------------------------------------------------------


class Recorder(torch.nn.Module):
    """Wraps the layer's dropout and keeps what came out of it."""

    def __init__(self, dropout: torch.nn.Module) -> None:
        super().__init__()
        self.dropout, self.seen = dropout, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(x)
        self.seen.append(out.detach().clone())
        return out


def dropout_model(p: float):
    model = get_trex_model(tiny_random_llama()[0], TRexConfig(r_a=2, r_b=4, dropout=p, use_intuition=False))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "trex_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    return model


def first_layer(model) -> TRexLinear:
    return next(m for m in model.modules() if isinstance(m, TRexLinear))


def test_dropout_is_off_in_evaluation_and_changes_nothing_there() -> None:
    ids = torch.randint(0, 200, (2, 7), generator=torch.Generator().manual_seed(0))
    with_dropout, without = dropout_model(0.5).eval(), dropout_model(0.0).eval()
    a, b = with_dropout(input_ids=ids).logits, with_dropout(input_ids=ids).logits
    assert torch.equal(a, b)
    torch.testing.assert_close(a, without(input_ids=ids).logits, rtol=0, atol=0)


def test_dropout_acts_on_the_adapter_input_in_training_and_nowhere_else() -> None:
    model = dropout_model(0.5).train()
    layer = first_layer(model)
    layer.dropout = Recorder(layer.dropout)
    x = torch.randn(2, 5, layer.in_features, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    out = layer(x)
    (dropped,) = layer.dropout.seen
    zeros = dropped == 0
    assert 0.3 < zeros.float().mean() < 0.7  # p = 0.5 of the adapter input's entries are dropped
    torch.testing.assert_close(dropped[~zeros], 2 * x[~zeros])  # the rest is scaled by 1 / (1 - p)
    # The output is the undropped base path plus the adapter applied to the dropped input (computed with no dropout).
    layer.dropout = torch.nn.Identity()
    expected = layer.base_layer(x) + layer.adapter_output(dropped)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    layer.dropout = torch.nn.Dropout(0.5)
    assert not torch.allclose(layer(x), layer.eval()(x))  # training with dropout differs from evaluation


class Crash(TrainerCallback):
    """Stops the run right after a checkpoint is complete, as a lost machine would (nothing after it runs)."""

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise KeyboardInterrupt


def adapter_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_tensors(run / "adapter" / ADAPTER_WEIGHTS_NAME)


def test_a_resumed_run_with_dropout_ends_with_the_same_weights(tmp_path: Path) -> None:
    """Dropout draws from the RNG every step, so only a restored RNG state gives the uninterrupted run's weights."""
    overrides = [f"intuition.cache_dir={tmp_path / 'cache'}", "training.max_steps=4", "adapter.dropout=0.3"]
    straight = run_training(load_recipe(RECIPE, [f"output_dir={tmp_path / 'a'}", *overrides]))
    with pytest.raises(KeyboardInterrupt):
        run_training(load_recipe(RECIPE, [f"output_dir={tmp_path / 'b'}", *overrides]), callbacks=[Crash()])
    assert not (tmp_path / "b" / "adapter").exists() and (tmp_path / "b" / "checkpoint-2" / "COMPLETE").exists()
    resumed = run_training(load_recipe(RECIPE, [f"output_dir={tmp_path / 'b'}", *overrides]), resume=True)
    assert resumed.steps == straight.steps == 4
    a, b = adapter_weights(tmp_path / "a"), adapter_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and dropout did act: the same run without it ends elsewhere
    plain = run_training(load_recipe(RECIPE, [f"output_dir={tmp_path / 'c'}", *overrides[:-1]]))
    c = adapter_weights(plain.run_dir)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# --- another seed, another result ----------------------------------------------------------------------------------


def points(n: int = 120, d: int = 16) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def test_kmeans_seeds_change_the_initialisation() -> None:
    one = spherical_kmeans(points(), 6, seed=0, backend="torch", n_iter=1)
    same = spherical_kmeans(points(), 6, seed=0, backend="torch", n_iter=1)
    other = spherical_kmeans(points(), 6, seed=1, backend="torch", n_iter=1)
    assert torch.equal(one.centroids, same.centroids)
    assert not torch.allclose(one.centroids, other.centroids)


def test_kmeans_seeds_change_the_sub_sample() -> None:
    """With one cluster the initialisation cannot matter: the centroid is the direction of the sub-sample's mean,
    so only the seeded choice of the max_points rows can move it."""
    runs = [spherical_kmeans(points(), 1, seed=s, backend="torch", max_points=10) for s in (0, 0, 1, 2)]
    assert torch.equal(runs[0].centroids, runs[1].centroids)
    assert not torch.allclose(runs[0].centroids, runs[2].centroids)
    assert not torch.allclose(runs[2].centroids, runs[3].centroids)
    full = spherical_kmeans(points(), 1, seed=0, backend="torch").centroids
    mean = torch.nn.functional.normalize(torch.nn.functional.normalize(points(), dim=1).mean(0), dim=0)
    torch.testing.assert_close(full[0], mean, rtol=1e-5, atol=1e-5)


def test_per_task_caps_follow_the_seed() -> None:
    texts, labels = [f"text {i}" for i in range(50)], ["a"] * 25 + ["b"] * 25
    zero, again, one = (cap_per_label(texts, labels, 5, seed) for seed in (0, 0, 1))
    assert zero == again and zero != one
    assert sorted(set(zero[1])) == ["a", "b"] and len(zero[0]) == len(one[0]) == 10


def test_mixture_caps_and_order_follow_the_seed() -> None:
    tasks = {name: load_task(name, "train") for name in ("copa", "boolq")}
    uids = [[(i.task, i.uid) for i in build_mixture(tasks, caps=8, seed=s)] for s in (0, 0, 1)]
    assert uids[0] == uids[1]
    assert set(uids[0]) != set(uids[2])  # another sample of each capped task, not only another order
    assert len(uids[0]) == len(uids[2]) == 16


# --- saved key names -----------------------------------------------------------------------------------------------


def test_saved_trex_adapter_keys_are_pinned(tmp_path: Path) -> None:
    """The names are the file format: peft-style prefixes and the trex_ parameter names, written out by hand here."""
    model = get_trex_model(tiny_random_llama()[0], TRexConfig(r_a=2, r_b=4))
    model.save_pretrained(tmp_path / "adapter")
    keys = set(load_tensors(tmp_path / "adapter" / ADAPTER_WEIGHTS_NAME))
    expected = {
        f"base_model.model.model.layers.{layer}.{block}.{module}.{name}"
        for layer in (0, 1)
        for block, modules in (
            ("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
            ("mlp", ("gate_proj", "up_proj", "down_proj")),
        )  # fmt: skip
        for module in modules
        for name in ("trex_A", "trex_B", "trex_router.weight", "trex_router.intuition_gate", "trex_router.output_gate")
    }
    assert keys == expected
    tensors = load_tensors(tmp_path / "adapter" / ADAPTER_WEIGHTS_NAME)
    q = "base_model.model.model.layers.0.self_attn.q_proj"
    assert tensors[f"{q}.trex_A"].shape == (2, 64) and tensors[f"{q}.trex_B"].shape == (64, 4)
    assert tensors[f"{q}.trex_router.weight"].shape == (8, 64)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r_a"] == 2 and config["r_b"] == 4


# --- acc vs acc_norm, and the leak guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logprobs", "options", "acc", "acc_norm"),
    [
        ([-2.0, -8.0], [" a", " bbbbbbbbbbbbbbb"], 0, 1),  # -1.0 vs -0.5 per character: the long option wins
        ([-6.0, -3.0], [" aaaaa", " b"], 1, 0),  # -1.0 vs -1.5 per character (the space counts)
        ([-3.0, -3.0], [" a", " b"], 0, 0),  # ties go to the first option, as numpy's argmax
        ([-1.0, -1.9], [" a", " bb"], 0, 0),  # -0.5 vs -0.63 with the space counted (-1.0 vs -0.95 without)
        ([-1.0, -4.0, -2.0], [" x", " yyyyyyyyyyy", " zz"], 0, 1),
    ],
)
def test_acc_sums_and_acc_norm_divides_by_characters(logprobs, options, acc, acc_norm) -> None:
    assert choose(logprobs, options) == (acc, acc_norm)
    expected_norm = max(range(len(options)), key=lambda i: (logprobs[i] / len(options[i]), -i))
    assert expected_norm == acc_norm and math.isfinite(logprobs[acc])


def nutcracker_row(n: int) -> dict:
    return {"centerpiece": f"Question number {n}?", "options": [f"yes {n}", f"no {n}"], "correct_options_idx": [0]}


def test_training_never_sees_an_evaluation_instance(tmp_path: Path) -> None:
    """MMLU's dev lines 21, 25, 46, 47, 50 repeat test questions upstream; a raw suite reproducing that must not
    leak them into training (the guard is the registry's exclusion list, checked here by content)."""
    root = tmp_path / "suite"
    (root / "mmlu").mkdir(parents=True)
    dev = [nutcracker_row(n) for n in range(1, 51)]
    test = [nutcracker_row(n) for n in (21, 25, 46, 47, 50)] + [nutcracker_row(n) for n in range(100, 110)]
    (root / "mmlu" / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    (root / "mmlu" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    train, evaluation = load_task("mmlu", "train", root), load_task("mmlu", "eval", root)
    assert len(train) == 45 and len(evaluation) == 15
    assert not {i.content_hash() for i in train} & {i.content_hash() for i in evaluation}


def test_the_shipped_subset_has_no_evaluation_instance_in_training() -> None:
    from trex.data import list_tasks

    for name in list_tasks("eval"):
        seen = {i.content_hash() for i in load_task(name, "eval")}
        try:
            train = load_task(name, "train")
        except Exception:  # a task evaluated only
            continue
        assert not [i.uid for i in train if i.content_hash() in seen], name
