"""Combining the denoising gradient g_DM with the downstream (frozen Prompt-DT) gradient g_PLM.

Prompt Diffuser (`reference/paper.md` §6) adds the PLM gradient only after removing its component along the
denoising gradient, so guidance cannot undo reconstruction. Our reading [ours] is a rank-1 projection on the
gradient flattened over all denoiser parameters, once per minibatch:

    project:  g = g_DM + λ·(g_PLM − (g_PLM·û)û),  û = g_DM/‖g_DM‖  (no projection if ‖g_DM‖ < 1e-12)
    sum:      g = g_DM + λ·g_PLM              (the paper's "all" ablation)
    none:     g = g_DM                        (the paper's "dm" ablation)
    plm-only: g = g_PLM                       (the paper's "dt" ablation)
    pcgrad:   project only when g_PLM·g_DM < 0, else sum

The combined g is written into each parameter's .grad, so an ordinary optimiser step follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pdiff.errors import UsageError

GUIDANCE_RULES = ("project", "sum", "none", "plm-only", "pcgrad")

# Below this ‖g_DM‖ the direction û is meaningless: the projection is skipped.
MIN_NORM = 1e-12

_NEEDS_DM = {"project", "sum", "none", "pcgrad"}
_NEEDS_PLM = {"project", "sum", "plm-only", "pcgrad"}


@dataclass
class CombinedGradient:
    """What one combination did, for logging. Norms of a gradient that was not computed are NaN."""

    rule: str
    cosine: float | None  # cos of the angle between g_DM and g_PLM; None without both or with a zero one
    norm_dm: float
    norm_plm: float
    projected_dot: float | None  # (g_PLM − proj)·û after a projection (≈ 0); None when none was made
    projected: bool = False  # whether the projection was applied (always for project, sometimes for pcgrad)
    norm_combined: float = math.nan  # ‖g‖ written into .grad


def _flat_gradient(loss: Tensor, params: list[nn.Parameter], retain_graph: bool) -> Tensor:
    """∇loss over params, flattened and concatenated; parameters the loss does not reach get zeros."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat(
        [
            torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


def _write_grad(params: list[nn.Parameter], flat: Tensor) -> None:
    """Set each parameter's .grad to its slice of flat (in place when a .grad exists, e.g. a bucket view)."""
    offset = 0
    for p in params:
        chunk = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)


def combine_gradients(
    params: list[nn.Parameter],
    loss_dm: Tensor | None,
    loss_plm: Tensor | None,
    *,
    rule: str,
    lam: float = 1.0,
) -> CombinedGradient:
    """Compute g_DM and g_PLM over params (one autograd.grad per given loss), combine them by `rule`, write .grad.

    Every given loss is differentiated, also one the rule ignores (pass None to save that backward pass: e.g.
    loss_plm with rule "none" costs a pass through the reverse chain and buys only the logged cosine).
    Existing .grad values are overwritten, not accumulated.
    """
    if rule not in GUIDANCE_RULES:
        raise UsageError(f"unknown guidance rule {rule!r}", f"use one of: {', '.join(GUIDANCE_RULES)}")
    if not math.isfinite(lam) or lam < 0:
        raise UsageError(f"guidance weight lambda {lam} must be finite and >= 0", "the paper uses 1")
    if rule in _NEEDS_DM and loss_dm is None:
        raise ValueError(f"guidance rule {rule!r} needs loss_dm")
    if rule in _NEEDS_PLM and loss_plm is None:
        raise ValueError(f"guidance rule {rule!r} needs loss_plm")
    params = list(params)
    frozen = [i for i, p in enumerate(params) if not p.requires_grad]
    if not params or frozen:
        raise ValueError(f"combine_gradients needs parameters that require grad (frozen indices: {frozen})")

    # Both losses may share part of a graph; keep it for the second pass.
    g_dm = None if loss_dm is None else _flat_gradient(loss_dm, params, retain_graph=loss_plm is not None)
    g_plm = None if loss_plm is None else _flat_gradient(loss_plm, params, retain_graph=False)

    nan = torch.tensor(math.nan, device=params[0].device)
    norm_dm = nan if g_dm is None else torch.linalg.vector_norm(g_dm)
    norm_plm = nan if g_plm is None else torch.linalg.vector_norm(g_plm)
    dot = nan if g_dm is None or g_plm is None else torch.dot(g_dm, g_plm)
    # One host sync for the scalars the rule needs (and one more below for the combined norm).
    norm_dm_f, norm_plm_f, dot_f = torch.stack((norm_dm, norm_plm, dot)).double().tolist()

    projected = rule == "project" or (rule == "pcgrad" and dot_f < 0)
    projected = projected and norm_dm_f >= MIN_NORM
    projected_dot = None
    if rule == "none":
        combined = g_dm
    elif rule == "plm-only":
        combined = g_plm
    elif projected:
        # In double precision: when ‖g_PLM‖ ≫ ‖g_DM‖, float32 rounding of g_PLM·û would leave a component
        # along û of order 1e-7·‖g_PLM‖, large next to ‖g_DM‖. The vectors are small (denoiser-sized).
        direction = g_dm.double() / norm_dm.double()
        orthogonal = g_plm.double() - torch.dot(g_plm.double(), direction) * direction
        combined = (g_dm.double() + lam * orthogonal).to(g_dm.dtype)
        projected_dot = torch.dot(orthogonal, direction)
    else:
        combined = g_dm + lam * g_plm
    _write_grad(params, combined)

    norm_combined = torch.linalg.vector_norm(combined)
    scalars = norm_combined if projected_dot is None else torch.stack((norm_combined.double(), projected_dot))
    scalars = scalars.double().reshape(-1).tolist()
    cosine = None
    if g_dm is not None and g_plm is not None and min(norm_dm_f, norm_plm_f) >= MIN_NORM:
        cosine = dot_f / (norm_dm_f * norm_plm_f)
    return CombinedGradient(
        rule=rule,
        cosine=cosine,
        norm_dm=norm_dm_f,
        norm_plm=norm_plm_f,
        projected_dot=None if projected_dot is None else scalars[1],
        projected=projected,
        norm_combined=scalars[0],
    )
