"""The fused T-REX path (one autograd node, ``trex.functional.fused_rank_one_mixture``) against the op-by-op path.

The op-by-op path is the router module followed by ``mix_rank_one``: the formula ``tests/test_layer.py`` checks
against an explicit sum over experts. Here both paths run on the same float64 layer and must agree to 1e-12 in the
output and in the gradient of every input and adapter parameter.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from trex_testing import randomize_adapter

from trex import TRexConfig, TRexLinear
from trex.functional import fused_rank_one_mixture
from trex.routing import RoutingContext

CONFIGS = [
    pytest.param(dict(mode="grid", preset="paper"), id="grid-paper"),
    pytest.param(dict(mode="grid", preset="clean"), id="grid-clean"),
    pytest.param(dict(mode="grid", preset="paper", r_a=2, r_b=16), id="grid-paper-2x16"),
    pytest.param(dict(mode="diagonal", r_a=4, r_b=4, preset="paper"), id="diagonal-paper"),
    pytest.param(dict(mode="diagonal", r_a=4, r_b=4, preset="clean"), id="diagonal-clean"),
    pytest.param(dict(mode="grid", preset="paper", n_clusters=5, intuition_mapping=True), id="grid-paper-mapped"),
    pytest.param(dict(mode="grid", preset="clean", n_clusters=3, intuition_mapping=True), id="grid-clean-mapped"),
    pytest.param(dict(mode="grid", preset="paper", use_intuition=False), id="grid-paper-router-only"),
    pytest.param(dict(mode="grid", preset="clean", use_intuition=False), id="grid-clean-router-only"),
    pytest.param(dict(mode="grid", preset="paper", factorised_router=True), id="grid-paper-factorised"),
    pytest.param(dict(mode="grid", preset="clean", r_a=2, r_b=16, factorised_router=True), id="grid-clean-factorised"),
]


def make_layer(d_in=12, d_out=10, **kwargs) -> TRexLinear:
    torch.manual_seed(0)
    layer = TRexLinear(nn.Linear(d_in, d_out, dtype=torch.float64), TRexConfig(**kwargs), RoutingContext())
    randomize_adapter(layer)
    return layer


def run(layer: TRexLinear, fused: bool, x: torch.Tensor, s: torch.Tensor | None):
    """Output and gradients (x, s, every adapter parameter) of one path, for a fixed random output weighting."""
    layer.fused = fused
    x = x.clone().requires_grad_(True)
    s = None if s is None else s.clone().requires_grad_(True)
    params = [p for n, p in layer.named_parameters() if n.startswith("trex_")]
    with layer.routing.use(s):
        y = layer(x)
    weight = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    inputs = [x, *([] if s is None else [s]), *params]
    grads = torch.autograd.grad((y * weight).sum(), inputs, allow_unused=True)
    return y.detach(), grads


@pytest.mark.parametrize("kwargs", CONFIGS)
@pytest.mark.parametrize("shape", [(3, 5), (7,)], ids=["batch-seq", "tokens"])
def test_fused_path_equals_op_by_op_in_float64(kwargs, shape):
    layer = make_layer(**kwargs)
    prior = None if layer.prior_width is None else torch.zeros(1, layer.prior_width, dtype=torch.float64)
    assert layer._softmax_affine(prior) is not None  # the fused path is the one under test
    x = torch.randn(*shape, 12, dtype=torch.float64)
    s = None if layer.prior_width is None else torch.randn(shape[0], layer.prior_width, dtype=torch.float64)
    y_ref, g_ref = run(layer, False, x, s)
    y, g = run(layer, True, x, s)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(g, g_ref, strict=True):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0
        else:
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_fused_function_passes_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    A = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    R = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    B = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(1, dtype=torch.float64, requires_grad=True)
    lb = torch.randn(2, 1, 6, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 1, 6, dtype=torch.float64, requires_grad=True)

    def f(x, A, R, B, scale, lb, b, s):
        return fused_rank_one_mixture(x, A, R, B, scale, lb, b, s, 3, False)

    assert torch.autograd.gradcheck(f, (x, A, R, B, scale, lb, b, s))


def test_fused_path_keeps_x_and_the_probabilities_only():
    """Saved activations per token: the input (d_in) and the K router probabilities, as LoRA r=K keeps x and A x."""
    layer = make_layer(d_in=64, d_out=48)
    layer.double()

    params = {p.untyped_storage().data_ptr() for p in layer.parameters()}

    def saved_bytes(tokens: int) -> int:
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if t.untyped_storage().data_ptr() not in params:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        x = torch.randn(2, tokens // 2, 64, dtype=torch.float64, requires_grad=True)
        with (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            layer.routing.use(torch.randn(2, 32, dtype=torch.float64)),
        ):
            layer(x).sum().backward()
        return sum(storages.values())

    def saved_per_token(fused: bool) -> float:
        layer.fused = fused
        return (saved_bytes(32) - saved_bytes(16)) / 16 / 8

    assert saved_per_token(True) == 64 + layer.config.n_experts
    assert saved_per_token(False) > saved_per_token(True)


# ---- without gradients (generation, evaluation): no autograd node, gates and intuition views cached ---------------


def op_by_op(layer: TRexLinear, x: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
    layer.fused = False
    try:
        with torch.no_grad(), layer.routing.use(s):
            return layer(x)
    finally:
        layer.fused = True


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_no_grad_path_equals_op_by_op_and_follows_every_change(kwargs):
    """Cached gate products and intuition views must never outlive what they were made from."""
    layer = make_layer(**kwargs).eval()
    gates = [getattr(layer.trex_router, g, None) for g in ("output_gate", "intuition_gate")]
    gates = [g for g in gates if g is not None]
    with torch.no_grad():
        for gate in gates:
            gate.fill_(0.002)  # sigmoid(100 g) away from saturation, so a gate change shows in the output
    x = torch.randn(3, 5, 12, dtype=torch.float64)
    s = None if layer.prior_width is None else torch.randn(3, layer.prior_width, dtype=torch.float64)
    with torch.no_grad(), layer.routing.use(s):
        first = layer(x)
        torch.testing.assert_close(first, op_by_op(layer, x, s), rtol=1e-12, atol=1e-12)
        for gate in gates:  # written in place, as an optimizer step or a load does
            gate.add_(0.003)
        if s is not None:
            s.mul_(-2.0)  # the same intuition tensor, changed in place between two calls of one context
        second = layer(x)
        assert not torch.allclose(first, second) or not (gates or s is not None)  # clean router-only: no gate
        torch.testing.assert_close(second, op_by_op(layer, x, s), rtol=1e-12, atol=1e-12)
        if s is not None:  # another intuition object with another batch size in the same layer
            other = torch.randn(2, layer.prior_width, dtype=torch.float64)
            with layer.routing.use(other):
                torch.testing.assert_close(layer(x[:2]), op_by_op(layer, x[:2], other), rtol=1e-12, atol=1e-12)
            with layer.routing.use(other), pytest.raises(ValueError, match="rows but the layer input has batch size"):
                layer(x)  # the check still runs when the view comes from the cache's key
    layer.float()  # cast: the cached float64 products must not be served
    with torch.no_grad(), layer.routing.use(None if s is None else s.float()):
        assert layer(x.float()).dtype == torch.float32
