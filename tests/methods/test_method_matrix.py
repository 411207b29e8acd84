"""One matrix over every registered method and ablation: the invariants every adapter must keep.

References are independent of the adapter code: a fresh base model for the no-op and ``disable_adapter`` checks,
a full forward for the KV cache, one row at a time for padded batches, a freshly seeded load for save/load and
the architecture's own parameter formula for the counts.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from trex_testing import randomize_adapter, tiny_llama

from trex.methods import build_adapter_model, load_adapter_model

from .cases import PARAMS, Case, build, instance_kwargs, is_adapter_parameter, token_batch


def logits(model, ids: torch.Tensor, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, **kwargs).logits


@pytest.mark.parametrize("case", PARAMS)
def test_init_is_a_no_op_and_disable_adapter_is_exactly_the_base(case: Case):
    ids = token_batch()
    reference = logits(tiny_llama(0), ids)
    model = build(case, randomize=False)
    s = instance_kwargs(model, 3)
    # every method here starts with B = 0, so the adapted model is the base model at init
    torch.testing.assert_close(logits(model, ids, **s), reference, rtol=0, atol=0)
    randomize_adapter(model)
    adapted = logits(model, ids, **s)
    assert (adapted - reference).abs().max() > 1e-3
    with model.disable_adapter():
        torch.testing.assert_close(logits(model, ids), reference, rtol=0, atol=0)
        with model.disable_adapter():
            torch.testing.assert_close(logits(model, ids), reference, rtol=0, atol=0)
        torch.testing.assert_close(logits(model, ids), reference, rtol=0, atol=0)  # the inner exit kept it off
    torch.testing.assert_close(logits(model, ids, **s), adapted, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="inside the block"):
        with model.disable_adapter():
            torch.testing.assert_close(logits(model, ids), reference, rtol=0, atol=0)
            raise RuntimeError("inside the block")
    torch.testing.assert_close(logits(model, ids, **s), adapted, rtol=0, atol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_training_changes_only_adapter_parameters(case: Case):
    model = build(case, randomize=False)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and trainable == {n for n in before if is_adapter_parameter(n)}
    # every parameter goes to the optimizer: a base parameter that was not frozen would get a gradient and move
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = token_batch()
    for step in range(3):
        torch.manual_seed(step)
        loss = model(input_ids=ids, labels=ids, **instance_kwargs(model, 3, seed=step)).loss
        loss = loss + sum(model.auxiliary_loss().values())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    assert any(n.endswith(("trex_B", "molora_B", "lora_B.default.weight")) for n in changed)
    base_names = [n for n in before if not is_adapter_parameter(n)]
    assert len(base_names) == len(list(tiny_llama(0).parameters()))


@pytest.mark.parametrize("case", PARAMS)
def test_save_reseed_load_gives_identical_logits(case: Case, tmp_path):
    model = build(case).eval()
    ids = token_batch()
    s = instance_kwargs(model, 3)
    expected = logits(model, ids, **s)
    model.save_pretrained(tmp_path / "adapter")
    torch.manual_seed(1234)  # a load must not depend on the RNG that initialised the layers
    loaded = load_adapter_model(tiny_llama(0), tmp_path / "adapter")
    assert type(loaded) is type(model) and type(loaded.adapter_config) is type(model.adapter_config)
    assert loaded.needs_instance_inputs == model.needs_instance_inputs
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    torch.testing.assert_close(logits(loaded, ids, **s), expected, rtol=0, atol=0)
    trainable = load_adapter_model(tiny_llama(0), tmp_path / "adapter", is_trainable=True)
    assert trainable.parameter_counts() == model.parameter_counts()


def left_padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    return ids, mask


@pytest.mark.parametrize("case", PARAMS)
def test_batched_generate_with_left_padding_equals_row_by_row(case: Case):
    model = build(case).double().eval()
    prompts = [token_batch(1, n, seed=n)[0] for n in (5, 9, 7)]
    s = instance_kwargs(model, 3, dtype=torch.float64)
    ids, mask = left_padded(prompts)
    options = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    together = model.generate(input_ids=ids, attention_mask=mask, **s, **options)
    for i, prompt in enumerate(prompts):
        row = {k: v[i : i + 1] for k, v in s.items()}
        alone = model.generate(input_ids=prompt[None], attention_mask=torch.ones_like(prompt[None]), **row, **options)
        assert torch.equal(together[i, -5:], alone[0, -5:]), f"row {i}"


@pytest.mark.parametrize("case", PARAMS)
def test_kv_cache_generation_matches_full_forward(case: Case):
    model = build(case).double().eval()
    ids = token_batch(2, 6)
    s = instance_kwargs(model, 2, dtype=torch.float64)
    out = model.generate(
        input_ids=ids, **s, max_new_tokens=5, do_sample=False, use_cache=True, return_dict_in_generate=True,
        output_logits=True, pad_token_id=0,
    )  # fmt: skip
    sequences = out.sequences
    assert sequences.shape == (2, 11)
    full = logits(model, sequences, **s)  # no cache: every position recomputed from the whole sequence
    for step, step_logits in enumerate(out.logits):
        position = ids.shape[1] - 1 + step
        torch.testing.assert_close(step_logits.double(), full[:, position], rtol=0, atol=1e-5)  # fp32 scores
        assert torch.equal(full[:, position].argmax(-1), sequences[:, position + 1])


def first_adapted_layer(model) -> nn.Module:
    return model.base_model.get_submodule(model.adapted_modules[0])


@pytest.mark.parametrize("case", PARAMS)
def test_gradient_checkpointing_gives_the_same_gradients(case: Case):
    ids = token_batch(2)
    grads, calls = [], []
    for checkpointing in (False, True):
        model = build(case)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        count = [0]

        def counter(*_, count=count) -> None:
            count[0] += 1

        # a pre-hook: the recomputation stops early after the last saved tensor, before a post-hook would run
        handle = first_adapted_layer(model).register_forward_pre_hook(counter)
        # two forwards before one backward: each recomputation must see its own batch's per-instance inputs
        loss = torch.zeros(())
        for seed in (1, 2):
            torch.manual_seed(seed)  # expert dropout (SiRA) draws the same masks in both runs
            loss = loss + model(input_ids=ids, labels=ids, **instance_kwargs(model, 2, seed=seed)).loss
            loss = loss + sum(model.auxiliary_loss().values())
        loss.backward()
        handle.remove()
        calls.append(count[0])
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert calls == [2, 4], "checkpointing must recompute each adapted layer during backward"
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)
    assert any(g.abs().max() > 0 for g in grads[0].values())


def expected_trainable(config, shapes: list[tuple[int, int]]) -> int:
    """The adapter's trainable parameters from each method's definition, for linear layers (d_in, d_out)."""
    width = config.prior_width
    total = 0
    for d_in, d_out in shapes:
        if config.method == "lora":
            total += config.r * (d_in + d_out)
        elif config.method in ("trex", "mor1e"):
            k = config.n_experts
            total += config.r_a * d_in + d_out * config.r_b
            router_rows = config.r_a + config.r_b if config.factorised_router else k  # row + column logits
            total += router_rows * d_in if config.use_router else 0
            total += k * width if width is not None and config.intuition_mapping else 0
            if config.preset == "paper":  # output gate h, and the token/intuition gate g with a token router
                total += 1 + (1 if config.use_router else 0)
            else:  # β, the scale of the prior on the logits
                total += 1 if width is not None else 0
        else:  # molora, sira: E experts of rank r, a router Linear(d_in, E), β and the map with a prior
            e, r = config.n_experts, config.r
            total += e * r * d_in + d_out * e * r + e * d_in
            total += 1 if width is not None else 0
            total += e * width if width is not None and config.intuition_mapping else 0
    return total


@pytest.mark.parametrize("case", PARAMS)
def test_meta_device_parameter_counts_equal_real_ones(case: Case):
    real = build(case, randomize=False)
    with torch.device("meta"):
        base = tiny_llama(0)
    meta = build_adapter_model(base, case.config())
    assert all(p.is_meta for p in meta.parameters())
    assert meta.parameter_counts() == real.parameter_counts()
    linear = [m for n, m in tiny_llama(0).named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    shapes = [(m.in_features, m.out_features) for m in linear]
    base_total = sum(p.numel() for p in tiny_llama(0).parameters())
    trainable = expected_trainable(case.config(), shapes)
    assert real.parameter_counts() == (trainable, base_total + trainable)


@pytest.mark.parametrize("case", PARAMS)
def test_adapter_follows_the_mode_of_its_base_model(case: Case):
    on_eval = build(case)  # tiny_llama is in eval mode, as transformers' from_pretrained returns models
    assert not any(m.training for m in on_eval.modules())
    ids = token_batch()
    outputs = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # nothing random may act at inference (SiRA's expert dropout is training-only)
        outputs.append(logits(on_eval, ids, **instance_kwargs(on_eval, 3)))
    assert torch.equal(outputs[0], outputs[1])
    on_train = build_adapter_model(tiny_llama(0).train(), case.config())
    assert all(m.training for m in on_train.modules())
