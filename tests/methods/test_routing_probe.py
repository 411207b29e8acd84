"""The routing probe of training (``routing_statistics`` with ``routing_out``) for every method of the matrix: each
routed module's routing of the real tokens only, in the form the router-convergence figure compares."""

from __future__ import annotations

import pytest
import torch

from .cases import PARAMS, Case, build, instance_kwargs, token_batch


@pytest.mark.parametrize("case", PARAMS)
def test_probe_routing_covers_real_tokens_and_matches_the_layer(case: Case):
    model = build(case)
    ids = token_batch()
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding on the first row
    batch = {"input_ids": ids, "attention_mask": mask, **instance_kwargs(model, len(ids))}
    routing: dict[str, torch.Tensor] = {}
    stats = model.routing_statistics(batch, routing)
    if case.method == "lora":
        assert stats == {} and routing == {}
        return
    routed = {name for name, row in stats.items() if "entropy" in row}
    assert routed and set(routing) == routed, "a routed method must report its routing"
    inputs: dict[str, torch.Tensor] = {}
    layers = model.adapter_layers()
    handles = [
        m.register_forward_hook(lambda mod, args, out, name=name: inputs.__setitem__(name, args[0]))
        for name, m in layers.items()
    ]
    with torch.no_grad():  # the inputs each layer sees in the same eval-mode forward
        model.eval()
        model(**batch)
    for handle in handles:
        handle.remove()
    intuition = batch.get("intuition")
    for name, value in routing.items():
        layer = layers[name]
        assert value.shape[0] == int(mask.sum()) and value.device.type == "cpu"
        with torch.no_grad():
            model.routing.intuition = intuition
            try:
                if hasattr(layer, "routing_weights"):
                    expected = layer.routing_weights(inputs[name], intuition).flatten(-2)
                else:
                    expected = layer.router_probabilities(inputs[name], intuition)
                    torch.testing.assert_close(value.sum(-1), torch.ones(value.shape[0]))  # a distribution
            finally:
                model.routing.intuition = None
        expected = expected.expand(*ids.shape, expected.shape[-1])  # a prior-only router: one row per instance
        torch.testing.assert_close(value, expected[mask.bool()].float())
