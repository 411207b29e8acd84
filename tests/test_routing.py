"""RoutingContext's per-call views of the intuition: made once, never served for another tensor or a changed one."""

from __future__ import annotations

import torch

from trex.routing import RoutingContext


def test_prior_views_are_made_once_per_intuition_and_rebuilt_when_it_changes():
    context = RoutingContext()
    made = []

    def view() -> torch.Tensor:
        made.append(context.intuition.clone())
        return made[-1]

    first = torch.zeros(2, 4)
    context.intuition = first
    assert context.prior_view(("k",), view) is context.prior_view(("k",), view)
    context.intuition = first  # set again (generate does it before every decoding step): the view stays
    context.prior_view(("k",), view)
    assert len(made) == 1
    first.add_(1.0)  # changed in place: a new version, so a new view
    assert torch.equal(context.prior_view(("k",), view), torch.ones(2, 4))
    context.intuition = torch.full((2, 4), 5.0)  # another tensor
    assert torch.equal(context.prior_view(("k",), view), torch.full((2, 4), 5.0))
    assert len(made) == 3
    with context.use(None):
        assert context.prior_view(("k",), lambda: torch.tensor(7.0)) == 7.0
