"""The pure math of T-REX routing, kept free of module state so each piece can be tested alone.

Shapes: ``K`` experts; ``g`` is the flat routing vector over expert cells (``K = r_a * r_b`` on the grid,
cell ``k`` = (A-row ``k // r_b``, B-column ``k % r_b``); ``K = r`` on the diagonal).
"""

from __future__ import annotations

import torch


def paper_routing(
    logits: torch.Tensor,
    intuition: torch.Tensor | None,
    intuition_gate: torch.Tensor,
    output_gate: torch.Tensor,
    *,
    token_coefficient: float,
    intuition_coefficient: float,
    sharpness: float,
) -> torch.Tensor:
    """The authors' rule, every scalar folded in: ``σ(k·h)·[σ(k·g)·c_tok·softmax(logits) + (1-σ(k·g))·c_int·s]``.

    Intuition is mixed in *after* the softmax (anchors-mission §1.3), so G is neither normalised nor
    non-negative. The output gate ``σ(k·h)`` is folded here, on the K-wide routing vector, rather than on the
    d_out-wide adapter output: a trainable scalar times a wide tensor makes autograd keep that tensor.
    """
    w = torch.sigmoid(sharpness * intuition_gate)
    out = torch.sigmoid(sharpness * output_gate)
    g = (out * w * token_coefficient) * torch.softmax(logits, dim=-1)
    if intuition is not None:
        g = g + (out * (1.0 - w) * intuition_coefficient) * intuition
    return g


def clean_routing(
    logits: torch.Tensor, intuition: torch.Tensor | None, intuition_scale: torch.Tensor, *, scale: float
) -> torch.Tensor:
    """Intuition as a prior on the logits: ``scale · K · softmax(logits + β·s)``; ``K·p`` has mean 1 per cell."""
    if intuition is not None:
        logits = logits + intuition_scale * intuition
    return (scale * logits.shape[-1]) * torch.softmax(logits, dim=-1)


def mix_rank_one(ax: torch.Tensor, g: torch.Tensor, r_b: int, diagonal: bool) -> torch.Tensor:
    """``z_j = Σ_i (A x)_i G_ij``: the r_b-wide vector that B maps to the output, without a loop over experts."""
    if diagonal:
        return ax * g
    return (ax.unsqueeze(-1) * g.unflatten(-1, (ax.shape[-1], r_b))).sum(dim=-2)


def routing_matrix(g: torch.Tensor, r_a: int, r_b: int, diagonal: bool) -> torch.Tensor:
    """The flat routing vector as the (r_a, r_b) matrix G of the layer's math."""
    return torch.diag_embed(g) if diagonal else g.unflatten(-1, (r_a, r_b))


def broadcast_intuition(intuition: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-instance rows (batch, K) viewed as (batch, 1, ..., K) so they broadcast over x's token dimensions."""
    return intuition.view(intuition.shape[0], *([1] * (x.dim() - 2)), intuition.shape[-1])
