"""TRexLinear against an explicit sum over every rank-one expert, in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from trex_testing import randomize_adapter

from trex import TRexConfig, TRexLinear
from trex.routing import RoutingContext

CONFIGS = [
    pytest.param(dict(mode="grid", preset="paper"), id="grid-paper"),
    pytest.param(dict(mode="grid", preset="clean"), id="grid-clean"),
    pytest.param(dict(mode="diagonal", r_a=4, r_b=4, preset="paper"), id="diagonal-paper"),
    pytest.param(dict(mode="diagonal", r_a=4, r_b=4, preset="clean"), id="diagonal-clean"),
    pytest.param(dict(mode="grid", preset="paper", n_clusters=5, intuition_mapping=True), id="grid-paper-mapped"),
    pytest.param(dict(mode="grid", preset="clean", n_clusters=3, intuition_mapping=True), id="grid-clean-mapped"),
    pytest.param(dict(mode="grid", preset="paper", factorised_router=True), id="grid-paper-factorised"),
    pytest.param(dict(mode="grid", preset="clean", r_a=2, r_b=16, factorised_router=True), id="grid-clean-factorised"),
]


def make_layer(dtype=torch.float64, d_in=12, d_out=10, **kwargs) -> TRexLinear:
    torch.manual_seed(0)
    layer = TRexLinear(nn.Linear(d_in, d_out, dtype=dtype), TRexConfig(**kwargs), RoutingContext())
    randomize_adapter(layer)
    return layer


def naive_reference(layer: TRexLinear, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """y = W0 x + b + Σ_k G_k (a_i · x) b_j, one expert at a time, written from the paper's formulas."""
    c = layer.config
    x, s = x.double(), s.double()
    W0, bias = layer.base_layer.weight.double(), layer.base_layer.bias.double()
    A, B, R = layer.trex_A.double(), layer.trex_B.double(), layer.trex_router.weight.double()
    if c.intuition_mapping:
        s = s @ layer.trex_router.prior_map.double().T
    s = s[:, None, :]  # one intuition row per instance, shared by its tokens
    logits = x @ R.T
    if c.factorised_router:  # r_a row logits, then r_b column logits; cell k = (row k // r_b, column k % r_b)
        assert R.shape[0] == c.r_a + c.r_b
        cells = [logits[..., k // c.r_b] + logits[..., c.r_a + k % c.r_b] for k in range(c.n_experts)]
        logits = torch.stack(cells, -1)
    if c.preset == "paper":
        w = torch.sigmoid(c.gate_sharpness * layer.trex_router.intuition_gate.double())
        out_gate = torch.sigmoid(c.gate_sharpness * layer.trex_router.output_gate.double())
        coef = out_gate * (w * c.token_coefficient * torch.softmax(logits, -1) + (1 - w) * c.intuition_coefficient * s)
    else:
        beta = layer.trex_router.prior_scale.double()
        coef = (c.alpha / c.r_a) * c.n_experts * torch.softmax(logits + beta * s, -1)
    y = x @ W0.T + bias
    for k in range(c.n_experts):
        i, j = (k // c.r_b, k % c.r_b) if c.mode == "grid" else (k, k)
        y = y + coef[..., k : k + 1] * (x @ A[i])[..., None] * B[:, j]
    return y


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_layer_matches_naive_expert_sum(kwargs):
    layer = make_layer(**kwargs)
    x = torch.randn(3, 5, 12, dtype=torch.float64)
    s = torch.randn(3, layer.config.intuition_width, dtype=torch.float64)
    with layer.routing.use(s):
        y = layer(x)
    torch.testing.assert_close(y, naive_reference(layer, x, s), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_routing_weights_reproduce_the_layer(kwargs):
    layer = make_layer(**kwargs)
    x = torch.randn(3, 5, 12, dtype=torch.float64)
    s = torch.randn(3, layer.config.intuition_width, dtype=torch.float64)
    G = layer.routing_weights(x, s)
    assert G.shape == (3, 5, layer.config.r_a, layer.config.r_b)
    if layer.config.mode == "diagonal":
        assert torch.count_nonzero(G - torch.diag_embed(torch.diagonal(G, dim1=-2, dim2=-1))) == 0
    expected = layer.base_layer(x) + ((x @ layer.trex_A.T)[..., :, None] * G).sum(-2) @ layer.trex_B.T
    with layer.routing.use(s):
        torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)


def test_factorised_router_is_a_row_softmax_times_a_column_softmax():
    """Softmax over the cells of (row + column) logits == outer product of the two small softmaxes."""
    layer = make_layer(preset="paper", factorised_router=True, use_intuition=False)
    assert layer.trex_router.weight.shape == (4 + 8, 12)
    x = torch.randn(3, 5, 12, dtype=torch.float64)
    rows, cols = (x @ layer.trex_router.weight.T).split([4, 8], dim=-1)
    expected = torch.softmax(rows, -1)[..., :, None] * torch.softmax(cols, -1)[..., None, :]
    torch.testing.assert_close(layer.router_probabilities(x, None), expected.flatten(-2), rtol=1e-12, atol=1e-12)


def test_factorised_router_needs_a_grid_and_a_router():
    with pytest.raises(ValueError, match="factorised_router needs mode='grid'"):
        TRexConfig(mode="diagonal", r_a=4, r_b=4, factorised_router=True)
    with pytest.raises(ValueError, match="factorised_router=True needs use_router=True"):
        TRexConfig(factorised_router=True, use_router=False)


def test_paper_preset_at_init_mixes_token_and_intuition_halves():
    """Zero router and gates: p is uniform, w = 0.5, output gate 0.5, so G = 0.5·(0.5·32/32 + 0.5·4·s)."""
    torch.manual_seed(0)
    layer = TRexLinear(nn.Linear(6, 5, dtype=torch.float64), TRexConfig(), RoutingContext())
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    s = torch.rand(2, 32, dtype=torch.float64)
    G = layer.routing_weights(x, s)
    expected = 0.5 * (0.5 * 32 / 32 + 0.5 * 4 * s)[:, None, :].expand(2, 3, 32).reshape(2, 3, 4, 8)
    torch.testing.assert_close(G, expected)


def test_gradcheck_through_every_adapter_parameter():
    layer = make_layer(d_in=5, d_out=4, r_a=2, r_b=3, n_clusters=2, intuition_mapping=True)
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)

    def run(x, s, *params):
        with layer.routing.use(s):
            return layer(x)

    params = [p for n, p in layer.named_parameters() if "trex_" in n]
    assert torch.autograd.gradcheck(run, (x, s, *params))


def test_no_graph_break_inside_the_layer():
    layer = make_layer(dtype=torch.float32)
    x = torch.randn(2, 4, 12)
    s = torch.randn(2, 32)
    with layer.routing.use(s):
        explanation = torch._dynamo.explain(layer)(x)
        compiled = torch.compile(layer, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), layer(x))
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_and_stays_close(dtype):
    layer = make_layer(dtype=torch.float32)
    x = torch.randn(2, 4, 12)
    s = torch.randn(2, 32)
    with layer.routing.use(s):
        reference = layer(x)
        with torch.autocast("cpu", dtype=dtype):
            y = layer(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), reference, rtol=5e-2, atol=5e-2)


def test_wrong_intuition_shapes_are_named():
    layer = make_layer()
    x = torch.randn(2, 4, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"intuition must have shape \(batch, 32\), got \(2, 7\)"):
        layer.routing_weights(x, torch.randn(2, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="intuition has 3 rows but the layer input has batch size 2"):
        layer.routing_weights(x, torch.randn(3, 32, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="routes with intuition, but none was given"):
        layer(x)
