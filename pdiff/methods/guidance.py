"""Combining the denoising gradient g_DM with the downstream (frozen Prompt-DT) gradient g_PLM.

Prompt Diffuser adds the PLM gradient only after removing its component in a subspace of denoising-gradient
directions, so guidance cannot undo reconstruction. The rules, on the gradient flattened over all denoiser
parameters, once per minibatch:

    project:  g = g_DM + λ·(g_PLM − (g_PLM·û)û),  û = g_DM/‖g_DM‖  (no projection if ‖g_DM‖ < 1e-12)
    gpm:      g = g_DM + λ·(g_PLM − U Uᵀ g_PLM),  U an orthonormal basis of the last M g_DM and the current
              one (pdiff.methods.gradient_basis); with M = 1 it is `project`
    sum:      g = g_DM + λ·g_PLM              (the paper's "all" ablation)
    none:     g = g_DM                        (the paper's "dm" ablation)
    plm-only: g = g_PLM                       (the paper's "dt" ablation)
    pcgrad:   project only when g_PLM·g_DM < 0, else sum

The combined g is written into each parameter's .grad, so an ordinary optimiser step follows. Every rule
reports the share of ‖g_PLM‖ it removed and the cosine between g_DM and g_PLM.

The rule names import without torch (it is imported where gradients are combined), so that the command
line can list them in its help without loading torch.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from pdiff.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from pdiff.methods.gradient_basis import GradientBasis

GuidanceRule = Literal["project", "sum", "none", "plm-only", "pcgrad", "gpm"]
GUIDANCE_RULES: tuple[str, ...] = get_args(GuidanceRule)
# The guidance ablation: the paper's four variants and gpm, the multi-vector reading of its projection
# (pcgrad is a variant of ours the ablation leaves out).
ABLATION_RULES: tuple[str, ...] = tuple(rule for rule in GUIDANCE_RULES if rule != "pcgrad")

# Below this ‖g_DM‖ the direction û is meaningless: the projection is skipped.
MIN_NORM = 1e-12

_NEEDS_DM = {"project", "sum", "none", "pcgrad", "gpm"}
_NEEDS_PLM = {"project", "sum", "plm-only", "pcgrad", "gpm"}


def rules_text(rules: tuple[str, ...] = GUIDANCE_RULES) -> str:
    """The rule names as the command line's help lists them."""
    return " | ".join(rules)


@dataclass
class CombinedGradient:
    """What one combination did, for logging. Norms of a gradient that was not computed are NaN."""

    rule: str
    cosine: float | None  # cos of the angle between g_DM and g_PLM; None without both or with a zero one
    norm_dm: float
    norm_plm: float
    projected_dot: float | None  # (g_PLM − removed)·û after a projection (≈ 0); None when none was made
    projected: bool = False  # whether a projection was applied (always for project and gpm, sometimes pcgrad)
    norm_combined: float = math.nan  # ‖g‖ written into .grad
    # ‖part of g_PLM the rule drops‖ / ‖g_PLM‖: the projected component for project, gpm and pcgrad, 0 for sum
    # and plm-only, 1 for none; None when g_PLM was not computed or is zero
    removed_share: float | None = None
    basis_rank: int | None = None  # gpm: dimension of the span projected out


def _flat_gradient(loss: Tensor, params: list[nn.Parameter], retain_graph: bool) -> Tensor:
    """∇loss over params, flattened and concatenated; parameters the loss does not reach get zeros."""
    import torch

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
    basis: GradientBasis | None = None,
) -> CombinedGradient:
    """Compute g_DM and g_PLM over params (one autograd.grad per given loss), combine them by `rule`, write
    .grad.

    Every given loss is differentiated, also one the rule ignores (pass None to save that backward pass: e.g.
    loss_plm with rule "none" costs a pass through the reverse chain and buys only the logged cosine).
    Existing .grad values are overwritten, not accumulated. Rule "gpm" needs `basis`, the state it keeps over
    the run (updated here with this step's g_DM).
    """
    import torch

    if rule not in GUIDANCE_RULES:
        raise UsageError(f"unknown guidance rule {rule!r}", f"use one of: {', '.join(GUIDANCE_RULES)}")
    if not math.isfinite(lam) or lam < 0:
        raise UsageError(f"guidance weight lambda {lam} must be finite and >= 0", "the paper uses 1")
    if rule in _NEEDS_DM and loss_dm is None:
        raise ValueError(f"guidance rule {rule!r} needs loss_dm")
    if rule in _NEEDS_PLM and loss_plm is None:
        raise ValueError(f"guidance rule {rule!r} needs loss_plm")
    if rule == "gpm" and basis is None:
        raise ValueError("guidance rule 'gpm' needs a GradientBasis")
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

    if rule == "gpm":
        basis.update(g_dm, norm_dm_f)
    projected = rule in ("project", "gpm") or (rule == "pcgrad" and dot_f < 0)
    projected = projected and norm_dm_f >= MIN_NORM
    projected_dot = removed_norm = None
    if rule == "none":
        combined = g_dm
    elif rule == "plm-only":
        combined = g_plm
    elif projected:
        # In double precision, û normalised in double too: when ‖g_PLM‖ ≫ ‖g_DM‖, float32 rounding of g_PLM·û
        # (or of ‖û‖) would leave a component along û of order 1e-7·‖g_PLM‖, large next to ‖g_DM‖. The vectors
        # are small (denoiser-sized).
        direction = g_dm.double()
        direction = direction / torch.linalg.vector_norm(direction)
        plm = g_plm.double()
        removed = basis.removed(plm) if rule == "gpm" else torch.dot(plm, direction) * direction
        orthogonal = plm - removed
        combined = (g_dm.double() + lam * orthogonal).to(g_dm.dtype)
        projected_dot = torch.dot(orthogonal, direction)
        removed_norm = torch.linalg.vector_norm(removed)
    else:
        combined = g_dm + lam * g_plm
    _write_grad(params, combined)

    norm_combined = torch.linalg.vector_norm(combined)
    scalars = [norm_combined.double()]
    if projected_dot is not None:
        scalars += [projected_dot, removed_norm]
    values = torch.stack(scalars).tolist()
    cosine = None
    if g_dm is not None and g_plm is not None and min(norm_dm_f, norm_plm_f) >= MIN_NORM:
        cosine = dot_f / (norm_dm_f * norm_plm_f)
    removed_share = None
    if g_plm is not None and norm_plm_f >= MIN_NORM:
        removed_share = values[2] / norm_plm_f if projected else 1.0 if rule == "none" else 0.0
    return CombinedGradient(
        rule=rule,
        cosine=cosine,
        norm_dm=norm_dm_f,
        norm_plm=norm_plm_f,
        projected_dot=None if projected_dot is None else values[1],
        projected=projected,
        norm_combined=values[0],
        removed_share=removed_share,
        basis_rank=basis.rank if rule == "gpm" else None,
    )


class GuidanceTrace:
    """The per-step share of ‖g_PLM‖ removed, cosine and gpm basis rank of a run, for its summary; saved with
    each resume checkpoint, so that a resumed run summarises every step as an uninterrupted one would."""

    KEYS = ("removed_share", "cosine", "basis_rank")

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {key: [] for key in self.KEYS}

    def add(self, gradient: CombinedGradient) -> None:
        for key in self.KEYS:
            value = getattr(gradient, key)
            self.values[key].append(math.nan if value is None else float(value))

    def summary(self) -> dict[str, float | None]:
        """Medians over the run's steps (None where the rule never gave the value: e.g. `none` computes no
        g_PLM, and only gpm has a basis)."""
        out: dict[str, float | None] = {}
        for key in self.KEYS:
            known = [v for v in self.values[key] if not math.isnan(v)]
            out[f"guidance_{key}_median"] = statistics.median(known) if known else None
        return out

    def state_dict(self) -> dict[str, Any]:
        import torch

        return {key: torch.tensor(values, dtype=torch.float64) for key, values in self.values.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values = {
            key: [float(v) for v in state[key].tolist()] if key in state else [] for key in self.KEYS
        }
