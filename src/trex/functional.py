"""The pure math of the rank-one mixture, kept free of module state so each piece can be tested alone.

Shapes: ``K`` experts; ``g`` is the flat routing vector over expert cells (``K = r_a * r_b`` on the grid,
cell ``k`` = (A-row ``k // r_b``, B-column ``k % r_b``); ``K = r`` on the diagonal). The routing rules that make
``g`` live in ``trex.methods.routers``.
"""

from __future__ import annotations

import torch

from trex.methods.routers import expand_grid_logits


def mix_rank_one(ax: torch.Tensor, g: torch.Tensor, r_b: int, diagonal: bool) -> torch.Tensor:
    """``z_j = Σ_i (A x)_i G_ij``: the r_b-wide vector that B maps to the output, without a loop over experts."""
    if diagonal:
        return ax * g
    # reshape, not unflatten: unflatten is a Python-level method, a measurable cost per decoded token and layer
    return (ax.unsqueeze(-1) * g.reshape(*g.shape[:-1], ax.shape[-1], r_b)).sum(dim=-2)


def routing_matrix(g: torch.Tensor, r_a: int, r_b: int, diagonal: bool) -> torch.Tensor:
    """The flat routing vector as the (r_a, r_b) matrix G of the layer's math."""
    return torch.diag_embed(g) if diagonal else g.unflatten(-1, (r_a, r_b))


# ---- the fused path -------------------------------------------------------------------------------------------------


def _mix_and_grads(ax: torch.Tensor, g: torch.Tensor, dz: torch.Tensor, r_b: int, diagonal: bool):
    """(dax, dg) of ``z = mix_rank_one(ax, g)`` given dz."""
    if diagonal:
        return g * dz, ax * dz
    G = g.unflatten(-1, (ax.shape[-1], r_b))
    dax = (G * dz.unsqueeze(-2)).sum(-1)
    dg = (ax.unsqueeze(-1) * dz.unsqueeze(-2)).flatten(-2)
    return dax, dg


def rank_one_mixture_from(
    x: torch.Tensor,
    AR: torch.Tensor,
    r_a: int,
    B: torch.Tensor,
    scale: torch.Tensor,
    logit_bias: torch.Tensor | None,
    prior_term: torch.Tensor | None,
    r_b: int,
    diagonal: bool,
    grid: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, router probabilities) from A and the router already stacked (``AR``) and the prior already scaled.

    The forward computation of ``fused_rank_one_mixture``; a layer that runs without gradients calls it directly
    with both inputs cached, since they change only when the weights or the intuition do. ``grid``: the router is
    factorised (row + column logits, ``trex.methods.routers.expand_grid_logits``).
    """
    h = torch.nn.functional.linear(x, AR)  # one pass over x for A and the router
    ax, logits = h[..., :r_a], h[..., r_a:]
    if grid is not None:
        logits = expand_grid_logits(logits, grid)
    p = torch.softmax(logits if logit_bias is None else logits + logit_bias, dim=-1)
    g = p * scale if prior_term is None else torch.addcmul(prior_term, p, scale)
    return torch.nn.functional.linear(mix_rank_one(ax, g, r_b, diagonal), B), p


def _mixture(x, A, R, B, a, lb, b, s, r_b, diagonal, grid) -> tuple[torch.Tensor, torch.Tensor]:
    return rank_one_mixture_from(
        x, torch.cat([A, R]), A.shape[0], B, a, lb, None if s is None else b * s, r_b, diagonal, grid
    )


def _times_thin(wide: torch.Tensor, thin: torch.Tensor) -> torch.Tensor:
    """``wide @ thin`` for (N, d) x (d, r): computed as ``(thinᵀ wideᵀ)ᵀ`` when r < 16.

    On the CPU, MKL's sgemm took 3-4x longer for ``dout @ B`` and ~5-10x longer for ``doutᵀ z`` with r_b = 8 than
    for the same products transposed (N = 512, d = 576 to 4096, 1 thread; at r = 16 and 32 the orientations are
    within 15%), and the backward pass needs both; a GPU BLAS reads either orientation alike.
    """
    return thin.T.matmul(wide.T).T if thin.shape[-1] < 16 else wide.matmul(thin)


class _RankOneMixture(torch.autograd.Function):
    """``out = B · mix(A x, a·softmax(R x + lb) + b·s)``: one node in the graph, only ``x`` and the softmax kept.

    Autograd on the same expression keeps ``A x``/``R x`` (one storage), the probabilities, ``g`` and the mixed
    vector ``z``; this keeps ``p`` (K per token) and recomputes ``A x`` (an r_a-row matmul), ``g`` and ``z`` in the
    backward pass, so a 4x8 grid keeps exactly what LoRA r=32 keeps (x and 32 values per token). The prior ``s`` is
    kept as given (the intuition every layer shares), never a per-layer product of it.
    """

    @staticmethod
    def forward(ctx, x, A, R, B, a, lb, b, s, r_b, diagonal, grid):  # noqa: D102
        out, p = _mixture(x, A, R, B, a, lb, b, s, r_b, diagonal, grid)
        ctx.save_for_backward(x, A, R, B, a, b, s, p)  # A, R, B, a, b are parameters or tiny: x and p are the cost
        ctx.shape = (r_b, diagonal, None if lb is None else lb.shape, grid)
        return out

    @staticmethod
    def backward(ctx, dout):  # noqa: D102
        x, A, R, B, a, b, s, p = ctx.saved_tensors
        r_b, diagonal, lb_shape, grid = ctx.shape
        ax = torch.nn.functional.linear(x, A)
        g = p * a if s is None else torch.addcmul(b * s, p, a)
        z = mix_rank_one(ax, g, r_b, diagonal)
        flat_dout = dout.reshape(-1, dout.shape[-1])
        dz = _times_thin(flat_dout, B).reshape(*dout.shape[:-1], B.shape[1])
        dB = z.reshape(-1, z.shape[-1]).T.matmul(flat_dout).T  # (zᵀ dout)ᵀ: see _times_thin
        dax, dg = _mix_and_grads(ax, g, dz, r_b, diagonal)
        need = ctx.needs_input_grad
        dgp = dg * p
        da = dgp.sum().reshape(a.shape) if need[4] else None
        db = ds = None
        if s is not None and (need[6] or need[7]):
            dq = dg.sum_to_size(s.shape) if dg.shape != s.shape else dg
            db = (dq * s).sum().reshape(b.shape) if need[6] else None
            ds = dq * b if need[7] else None
        # softmax backward of dp = a·dg: p ⊙ (dp - Σ dp ⊙ p) = a · (dg ⊙ p - p · Σ dg ⊙ p)
        dlogits = torch.addcmul(dgp, p, dgp.sum(-1, keepdim=True), value=-1.0) * a
        dlb = None
        if lb_shape is not None and need[5]:
            dlb = dlogits.sum_to_size(lb_shape) if dlogits.shape != lb_shape else dlogits
        if grid is not None:  # a cell's logit is its row's plus its column's
            cells = dlogits.unflatten(-1, grid)
            dh = torch.cat([dax, cells.sum(-1), cells.sum(-2)], dim=-1)
        else:
            dh = torch.cat([dax, dlogits], dim=-1)
        dx = dh.matmul(torch.cat([A, R])) if need[0] else None
        dA = dR = None
        if need[1] or need[2]:
            dA, dR = dh.reshape(-1, dh.shape[-1]).T.matmul(x.reshape(-1, x.shape[-1])).split([A.shape[0], R.shape[0]])
        return dx, dA, dR, dB, da, dlb, db, ds, None, None, None


def fused_rank_one_mixture(
    x: torch.Tensor,
    A: torch.Tensor,
    router_weight: torch.Tensor,
    B: torch.Tensor,
    scale: torch.Tensor,
    logit_bias: torch.Tensor | None,
    prior_scale: torch.Tensor | None,
    prior: torch.Tensor | None,
    r_b: int,
    diagonal: bool,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``B · mix_rank_one(A x, scale·softmax(R x + logit_bias) + prior_scale·prior)``: a T-REX layer's adapter output.

    Equal to the unfused expression (to rounding; the float64 tests hold it to 1e-12 with gradients) but kept in
    the autograd graph as one node that saves ``x`` and the K router probabilities per token (A, the router, B and
    the prior are kept as the tensors given). ``scale`` and ``prior_scale`` are 1-element tensors (trainable gate
    products or constants); ``logit_bias`` and ``prior`` broadcast over the tokens of an instance. A and the
    router read x in one matmul over their concatenation. ``grid``: ``R x`` holds row and column logits of a
    factorised router, expanded to the cells before the softmax.
    """
    inputs = (x, A, router_weight, B, scale, logit_bias, prior_scale, prior)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        return _RankOneMixture.apply(*inputs, r_b, diagonal, grid)
    # nothing to differentiate (generation, evaluation): the same math without an autograd node's bookkeeping
    return _mixture(*inputs, r_b, diagonal, grid)[0]
