"""MoLoRA and SiRA layers against a naive float64 loop over experts; SiRA's training-only routing rules.

    y = W0 x + b + (alpha / r) Σ_e g_e B_e A_e x

MoLoRA: g = softmax(R x [+ β s]); SiRA in eval: the top k of that softmax, renormalised over the chosen experts.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from trex_testing import randomize_adapter, tiny_llama

from trex.methods import build_adapter_model
from trex.methods.molora import MixtureLoRALinear, MoLoRAConfig, SiRAConfig
from trex.routing import RoutingContext

from .cases import token_batch

D_IN, D_OUT = 12, 10


def make_layer(config: MoLoRAConfig, dtype: torch.dtype = torch.float64) -> MixtureLoRALinear:
    torch.manual_seed(0)
    layer = MixtureLoRALinear(nn.Linear(D_IN, D_OUT, dtype=dtype), config, RoutingContext())
    randomize_adapter(layer)
    return layer


def naive_gates(layer: MixtureLoRALinear, x: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
    """The routing weights of each token, one token at a time, in float64."""
    c = layer.config
    R = layer.molora_router.weight.double()
    gates = torch.zeros(*x.shape[:-1], c.n_experts, dtype=torch.float64)
    for b in range(x.shape[0]):
        prior = None
        if s is not None:
            prior = s[b].double()
            if c.intuition_mapping:
                prior = layer.molora_router.prior_map.double() @ prior
            prior = layer.molora_router.prior_scale.double() * prior
        for t in range(x.shape[1]):
            logits = R @ x[b, t].double()
            if prior is not None:
                logits = logits + prior
            p = torch.exp(logits - logits.max())
            p = p / p.sum()
            if isinstance(c, SiRAConfig):
                chosen = sorted(range(c.n_experts), key=lambda e: -p[e].item())[: c.top_k]
                total = sum(p[e] for e in chosen)
                for e in chosen:
                    gates[b, t, e] = p[e] / total
            else:
                gates[b, t] = p
    return gates


def naive_output(layer: MixtureLoRALinear, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    c = layer.config
    x = x.double()
    y = x @ layer.base_layer.weight.double().T + layer.base_layer.bias.double()
    A, B = layer.molora_A.double(), layer.molora_B.double()  # (E, r, d_in), (d_out, E, r)
    for e in range(c.n_experts):
        expert = (x @ A[e].T) @ B[:, e, :].T  # B_e A_e x
        y = y + (c.alpha / c.r) * gates[..., e : e + 1] * expert
    return y


CONFIGS = [
    pytest.param(MoLoRAConfig(n_experts=4, r=3, alpha=6.0), id="molora"),
    pytest.param(MoLoRAConfig(n_experts=4, r=3, use_intuition=True), id="molora-intuition"),
    pytest.param(
        MoLoRAConfig(n_experts=4, r=2, use_intuition=True, n_clusters=6, intuition_mapping=True), id="molora-mapped"
    ),
    pytest.param(SiRAConfig(n_experts=5, r=2, top_k=2, alpha=4.0), id="sira-k2"),
    pytest.param(SiRAConfig(n_experts=4, r=3, top_k=1), id="sira-k1"),
    pytest.param(SiRAConfig(n_experts=4, r=2, top_k=3, use_intuition=True), id="sira-k3-intuition"),
]  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS)
def test_eval_layer_matches_naive_expert_loop(config: MoLoRAConfig):
    layer = make_layer(config).eval()
    x = torch.randn(3, 5, D_IN, dtype=torch.float64)
    s = torch.rand(3, config.prior_width, dtype=torch.float64) if config.prior_width else None
    with layer.routing.use(s):
        y = layer(x)
    torch.testing.assert_close(y, naive_output(layer, x, naive_gates(layer, x, s)), rtol=1e-10, atol=1e-12)
    assert (y - layer.base_layer(x)).abs().max() > 1e-3  # the experts contribute


def test_float32_layer_matches_the_float64_loop():
    layer = make_layer(SiRAConfig(n_experts=4, r=2, top_k=2), dtype=torch.float32).eval()
    x = torch.randn(2, 6, D_IN)
    y = layer(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), naive_output(layer, x, naive_gates(layer, x, None)), rtol=1e-5, atol=1e-5)


def captured_gates(layer: MixtureLoRALinear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(layer output, the gates its router returned) for one call."""
    seen = []
    handle = layer.molora_router.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
    try:
        y = layer(x)
    finally:
        handle.remove()
    return y, seen[0]


def skewed_input(tokens: int, seed: int = 0) -> torch.Tensor:
    """Tokens whose feature 0 is large: with R[0, 0] large, expert 0 is every token's first choice."""
    x = torch.randn(1, tokens, D_IN, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    x[..., 0] = 4.0
    return x


@pytest.mark.parametrize(("capacity_factor", "top_k"), [(1.0, 2), (1.25, 1), (0.5, 2)])
def test_sira_capacity_is_respected_and_dropped_tokens_are_counted(capacity_factor, top_k):
    config = SiRAConfig(n_experts=4, r=2, top_k=top_k, capacity_factor=capacity_factor, expert_dropout=0.0)
    layer = make_layer(config).train()
    with torch.no_grad():
        layer.molora_router.weight[0, 0] = 3.0
    x = torch.cat([skewed_input(9, seed=0), skewed_input(9, seed=1)])  # 2 x 9 = 18 tokens
    tokens = 18
    capacity = math.ceil(capacity_factor * tokens * top_k / config.n_experts)
    y, gates = captured_gates(layer, x)
    eval_gates = naive_gates(layer, x, None).view(tokens, config.n_experts)
    # first come, first served in token order, per expert, computed here from the eval routing
    kept = torch.zeros_like(eval_gates)
    taken = [0] * config.n_experts
    for t in range(tokens):
        for e in range(config.n_experts):
            if eval_gates[t, e] > 0 and taken[e] < capacity:
                kept[t, e] = eval_gates[t, e]
                taken[e] += 1
    assigned = int((eval_gates > 0).sum())
    dropped = assigned - int((kept > 0).sum())
    assert dropped > 0, "the skewed router must overflow expert 0"
    flat = gates.view(tokens, config.n_experts)
    assert int((flat > 0).sum(0).max()) <= capacity
    torch.testing.assert_close(flat, kept, rtol=1e-10, atol=1e-12)
    assert int(layer.molora_router.dropped_tokens) == dropped
    assert int(layer.molora_router.routed_tokens) == assigned == tokens * top_k
    torch.testing.assert_close(y, naive_output(layer, x, kept.view(2, 9, -1)), rtol=1e-10, atol=1e-12)
    layer(x)  # counts accumulate over calls
    assert int(layer.molora_router.dropped_tokens) == 2 * dropped
    assert layer.molora_router.gate_values() == {"dropped_share": pytest.approx(dropped / assigned)}
    layer.eval()  # no capacity at inference: an instance's output never depends on its batch
    y_eval, eval_out = captured_gates(layer, x)
    torch.testing.assert_close(eval_out.view(tokens, -1), eval_gates, rtol=1e-10, atol=1e-12)
    assert int(layer.molora_router.dropped_tokens) == 2 * dropped


def test_sira_padding_takes_no_capacity_and_no_part_in_the_balance_loss():
    """A padded batch routes its real tokens exactly as the same real tokens without padding would."""
    config = SiRAConfig(n_experts=4, r=2, top_k=2, capacity_factor=0.5, expert_dropout=0.0, load_balance_loss=0.1)
    layer = make_layer(config).train()
    x = torch.randn(2, 9, D_IN, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # row 1: 3 pads
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    real = torch.cat([x[0], x[1, :6]]).unsqueeze(0)  # the 15 real tokens in the same order, as one unpadded row

    def run(inputs, token_mask):
        layer.molora_router.dropped_tokens.zero_()
        layer.molora_router.routed_tokens.zero_()
        with layer.routing.real_tokens(token_mask), layer.routing.collect_losses() as losses:
            _, gates = captured_gates(layer, inputs)
        counts = int(layer.molora_router.dropped_tokens), int(layer.molora_router.routed_tokens)
        return gates, losses["load_balance"][0], counts

    padded, padded_loss, padded_counts = run(x, mask)
    alone, alone_loss, alone_counts = run(real, None)
    torch.testing.assert_close(padded[mask.bool()], alone[0], rtol=1e-12, atol=1e-12)
    assert torch.equal(padded[~mask.bool()], torch.zeros_like(padded[~mask.bool()]))
    assert padded_counts == alone_counts and alone_counts[1] == 15 * 2 and alone_counts[0] > 0  # capacity binds
    torch.testing.assert_close(padded_loss, alone_loss, rtol=1e-12, atol=1e-12)
    _, unmasked_loss, unmasked_counts = run(x, None)  # without the mask the padding would count
    assert unmasked_counts[1] == 18 * 2 and not torch.allclose(unmasked_loss, alone_loss)


def test_sira_model_masks_padding_from_the_attention_mask():
    config = SiRAConfig(n_experts=4, r=2, top_k=2, capacity_factor=1.0, expert_dropout=0.0)
    model = build_adapter_model(tiny_llama(0), config).train()
    ids = token_batch(2, 7)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    model(input_ids=ids, attention_mask=mask)
    routed = {int(layer.molora_router.routed_tokens) for layer in model.adapter_layers().values()}
    assert routed == {(14 - 2) * 2}  # 12 real tokens, 2 experts each, in every layer
    assert model.routing.token_mask is None  # only for the duration of the call


def test_sira_expert_dropout_acts_only_in_training():
    config = SiRAConfig(n_experts=4, r=2, top_k=2, capacity_factor=None, expert_dropout=0.5)
    layer = make_layer(config)
    x = torch.randn(2, 8, D_IN, dtype=torch.float64)
    reference = naive_output(layer, x, naive_gates(layer, x, None))
    layer.eval()
    torch.manual_seed(1)
    first = layer(x)
    torch.manual_seed(2)
    second = layer(x)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, reference, rtol=1e-10, atol=1e-12)

    layer.train()
    eval_gates = naive_gates(layer, x, None)
    outputs = []
    for seed in (1, 2, 1):
        torch.manual_seed(seed)
        y, gates = captured_gates(layer, x)
        outputs.append(y)
        # each gate entry is the eval gate or zero (no rescaling): dropout on the mixture weights
        kept = gates != 0
        torch.testing.assert_close(gates[kept], eval_gates[kept], rtol=1e-10, atol=1e-12)
        assert ((eval_gates > 0) & ~kept).any(), "expert dropout must drop some chosen experts"
        torch.testing.assert_close(y, naive_output(layer, x, gates), rtol=1e-10, atol=1e-12)
    assert (outputs[0] - outputs[1]).abs().max() > 1e-6, "training output must vary with the RNG"
    assert torch.equal(outputs[0], outputs[2])


def test_sira_load_balance_loss_reaches_the_router_gradient():
    weight = 0.05
    config = SiRAConfig(n_experts=4, r=2, top_k=2, load_balance_loss=weight, expert_dropout=0.5)
    model = build_adapter_model(tiny_llama(0), config)  # at init B = 0: a router moves only its own layer's loss
    model.train()
    inputs: dict[str, torch.Tensor] = {}
    layers = model.adapter_layers()
    handles = [
        layer.register_forward_pre_hook(lambda m, args, name=name: inputs.__setitem__(name, args[0].detach()))
        for name, layer in layers.items()
    ]
    torch.manual_seed(0)
    model(input_ids=token_batch(2, 7))
    for handle in handles:
        handle.remove()
    losses = model.auxiliary_loss()
    assert set(losses) == {"load_balance"}
    losses["load_balance"].backward()

    references = {}
    for name, layer in layers.items():
        R = layer.molora_router.weight.detach().double().requires_grad_()
        p = torch.softmax(inputs[name].double() @ R.T, dim=-1).reshape(-1, config.n_experts)
        top = p.topk(config.top_k, dim=-1).indices
        f = torch.zeros(config.n_experts, dtype=torch.float64)
        for row in top:  # share of the token-to-expert assignments that went to each expert
            f[row] += 1.0 / (p.shape[0] * config.top_k)
        switch = config.n_experts * (f * p.mean(0)).sum()
        references[name] = (weight * switch, torch.autograd.grad(weight * switch, R)[0])
    total = sum(value for value, _ in references.values()) / len(references)  # the mean over adapted layers
    torch.testing.assert_close(losses["load_balance"].double(), total.detach(), rtol=1e-5, atol=1e-8)
    for name, layer in layers.items():
        grad = layer.molora_router.weight.grad
        assert grad is not None and grad.abs().max() > 0, name
        expected = references[name][1] / len(references)
        torch.testing.assert_close(grad.double(), expected, rtol=1e-4, atol=1e-9, msg=name)
    assert model.auxiliary_loss() is losses
    model.eval()
    model(input_ids=token_batch(2, 7))
    assert model.auxiliary_loss() == {}  # no auxiliary loss outside training


def test_molora_router_gets_no_balance_loss_by_default_and_one_when_asked():
    ids = token_batch(2, 5)
    off = build_adapter_model(tiny_llama(0), MoLoRAConfig(n_experts=4, r=2)).train()
    off(input_ids=ids)
    assert off.auxiliary_loss() == {}
    on = build_adapter_model(tiny_llama(0), MoLoRAConfig(n_experts=4, r=2, load_balance_loss=0.1, router_z_loss=0.01))
    on.train()
    on(input_ids=ids)
    assert set(on.auxiliary_loss()) == {"load_balance", "router_z"}
    sum(on.auxiliary_loss().values()).backward()
    assert all(layer.molora_router.weight.grad.abs().max() > 0 for layer in on.adapter_layers().values())


def test_sira_counts_each_token_once_under_gradient_checkpointing():
    counts = []
    for checkpointing in (False, True):
        config = SiRAConfig(n_experts=4, r=2, top_k=2, capacity_factor=0.5, expert_dropout=0.0)
        model = build_adapter_model(tiny_llama(0), config).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        ids = token_batch(2, 7)
        model(input_ids=ids, labels=ids).loss.backward()  # the backward recomputes every checkpointed block
        routers = [layer.molora_router for layer in model.adapter_layers().values()]
        counts.append([(int(r.dropped_tokens), int(r.routed_tokens)) for r in routers])
    assert counts[0] == counts[1]
    assert all(routed == 2 * 7 * 2 for _, routed in counts[0])  # 14 tokens, 2 experts each
    assert sum(dropped for dropped, _ in counts[0]) > 0  # capacity ceil(0.5 * 14 * 2 / 4) = 4 binds
