"""The pure math of the rank-one mixture, kept free of module state so each piece can be tested alone.

Shapes: ``K`` experts; ``g`` is the flat routing vector over expert cells (``K = r_a * r_b`` on the grid,
cell ``k`` = (A-row ``k // r_b``, B-column ``k % r_b``); ``K = r`` on the diagonal). The routing rules that make
``g`` live in ``trex.methods.routers``.
"""

from __future__ import annotations

import torch


def mix_rank_one(ax: torch.Tensor, g: torch.Tensor, r_b: int, diagonal: bool) -> torch.Tensor:
    """``z_j = Σ_i (A x)_i G_ij``: the r_b-wide vector that B maps to the output, without a loop over experts."""
    if diagonal:
        return ax * g
    return (ax.unsqueeze(-1) * g.unflatten(-1, (ax.shape[-1], r_b))).sum(dim=-2)


def routing_matrix(g: torch.Tensor, r_a: int, r_b: int, diagonal: bool) -> torch.Tensor:
    """The flat routing vector as the (r_a, r_b) matrix G of the layer's math."""
    return torch.diag_embed(g) if diagonal else g.unflatten(-1, (r_a, r_b))
