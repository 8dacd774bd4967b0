"""The memory of the `gpm` guidance rule: the last M denoising gradients and an orthonormal basis of their
span.

The method's projection removes from g_PLM its component in a subspace spanned by denoising-gradient
directions, without saying how that subspace is built. Ours: a ring of the last `memory` g_DM (flattened over
the denoiser's parameters, each scaled to unit length, so that the early, large gradients of a run do not
crowd out the recent ones), and every `refresh_every` steps an orthonormal basis U of the ring's span, by QR
and an SVD of the small R factor, keeping the leading singular directions that hold `energy` of the squared
singular values. At each step the current g_DM is added to the span used (one Gram-Schmidt step), so that
with memory 1 the rule is the rank-1 projection along û = g_DM/‖g_DM‖.

Memory: the ring holds memory × P float64 values and the basis at most memory × P more (P, the denoiser's
parameter count): at most 40 MB for memory 10 and a 0.25M-parameter denoiser, on the denoiser's device. Each
resume checkpoint holds the ring (20 MB there), and the basis too when refresh_every > 1. Float64 so that
the current g_DM's direction is removed to double precision, as the rank-1 rule does.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor

from pdiff.errors import UsageError

DEFAULT_MEMORY = 10
DEFAULT_REFRESH_EVERY = 10
DEFAULT_ENERGY = 0.99

# Singular directions below this fraction of the largest one are rounding (gradients are computed in
# float32) of a lower-rank ring, and a current g_DM whose part outside the basis is below this fraction of
# its norm is already in the span: neither is a direction.
RANK_RTOL = 1e-5


class GpmSettings(BaseModel):
    """The basis settings of guidance gpm, as the diffuse stage's `gpm` section sets them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    memory: int = Field(
        DEFAULT_MEMORY, ge=1, description="M: past denoising gradients whose span gpm projects out."
    )
    refresh_every: int = Field(
        DEFAULT_REFRESH_EVERY,
        ge=1,
        description="K: steps between recomputations of the basis (1: every step).",
    )
    energy: float = Field(
        DEFAULT_ENERGY,
        description="Share of the gradients' energy (squared singular values) the basis keeps, in (0, 1].",
    )

    @field_validator("energy")
    @classmethod
    def _energy_in_range(cls, energy: float) -> float:
        if not (math.isfinite(energy) and 0 < energy <= 1):
            raise ValueError("gpm energy must be in (0, 1]")
        return energy


def check_gpm_settings(memory: int, refresh_every: int, energy: float) -> None:
    """Refuse values outside the allowed ranges, naming the setting, the value and the range."""
    if isinstance(memory, bool) or not isinstance(memory, int) or memory < 1:
        raise UsageError(f"gpm memory {memory!r} must be an integer >= 1", f"the default is {DEFAULT_MEMORY}")
    if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 1:
        raise UsageError(
            f"gpm refresh_every {refresh_every!r} must be an integer >= 1",
            f"the default is {DEFAULT_REFRESH_EVERY}",
        )
    if not (isinstance(energy, int | float) and math.isfinite(energy) and 0 < energy <= 1):
        raise UsageError(f"gpm energy {energy!r} must be in (0, 1]", f"the default is {DEFAULT_ENERGY}")


def orthonormal_basis(columns: Tensor, energy: float) -> Tensor:
    """(P, r) float64 orthonormal basis of the span of `columns` (P, m; not all zero): the fewest leading left
    singular vectors holding `energy` of the squared singular values, none that is only rounding."""
    q, r = torch.linalg.qr(columns.double())  # a tall, thin matrix: the SVD is of the small m × m factor
    u_small, singular, _ = torch.linalg.svd(r)
    values = singular.tolist()  # m numbers: the rank is chosen on the host, whatever the device
    total, cumulative, rank = sum(v * v for v in values), 0.0, 0
    for value in values:
        # a small slack: a share of exactly 1 may round below it
        if value <= RANK_RTOL * values[0] or (rank and cumulative / total >= energy - 1e-12):
            break
        cumulative, rank = cumulative + value * value, rank + 1
    return q @ u_small[:, :rank]


class GradientBasis:
    """gpm's state over a run: the ring of past unit g_DM, the basis of its span and the step count."""

    def __init__(
        self,
        memory: int = DEFAULT_MEMORY,
        refresh_every: int = DEFAULT_REFRESH_EVERY,
        energy: float = DEFAULT_ENERGY,
    ) -> None:
        check_gpm_settings(memory, refresh_every, energy)
        self.memory, self.refresh_every, self.energy = memory, refresh_every, energy
        self.ring: Tensor | None = None  # (memory, P) float64; rows [0, filled) hold gradients
        self.filled = 0
        self.next = 0  # the row the next gradient overwrites
        self.steps = 0  # update() calls so far
        self.basis: Tensor | None = None  # (P, r) float64, from the last refresh
        self.extra: Tensor | None = None  # (P,) float64: the current g_DM's direction outside the basis

    @property
    def rank(self) -> int:
        """Dimension of the span the last projection used (basis plus the current g_DM's own direction)."""
        own = 0 if self.extra is None else 1
        return own + (0 if self.basis is None else self.basis.shape[1])

    def vectors(self) -> Tensor:
        """The orthonormal vectors the last projection removed g_PLM along, as columns (P, rank)."""
        parts = [] if self.basis is None else [self.basis]
        parts += [] if self.extra is None else [self.extra[:, None]]
        if not parts:
            raise ValueError("the basis is empty: call update() with a non-zero gradient first")
        return torch.cat(parts, dim=1)

    def update(self, g_dm: Tensor, norm: float) -> None:
        """Take this step's g_DM (of norm `norm`): into the ring, the basis refreshed if due, and its own
        direction added to the span. A zero g_DM (norm below 1e-12) has no direction and is not stored."""
        if norm >= 1e-12:
            unit = g_dm.detach().double()
            unit = unit / torch.linalg.vector_norm(unit)  # in double: a float32 norm is off by ~1e-7
            if self.ring is None:
                self.ring = g_dm.new_zeros((self.memory, g_dm.numel()), dtype=torch.float64)
            self.ring[self.next] = unit
            self.next = (self.next + 1) % self.memory
            self.filled = min(self.filled + 1, self.memory)
        else:
            unit = None
        if self.filled and (self.basis is None or self.steps % self.refresh_every == 0):
            self.basis = orthonormal_basis(self.ring[: self.filled].T, self.energy)
        self.steps += 1
        self.extra = None
        if unit is not None:
            # twice is enough: one more pass removes what rounding left of the basis directions
            residual = unit
            for _ in range(2):
                if self.basis is not None:
                    residual = residual - self.basis @ (self.basis.T @ residual)
            residual_norm = float(torch.linalg.vector_norm(residual))
            if residual_norm > RANK_RTOL:
                self.extra = residual / residual_norm

    def removed(self, g_plm: Tensor) -> Tensor:
        """The component of g_PLM (float64) in the span the basis and the current g_DM hold."""
        removed = torch.zeros_like(g_plm)
        if self.basis is not None:
            removed = self.basis @ (self.basis.T @ g_plm)
        if self.extra is not None:
            removed = removed + torch.dot(self.extra, g_plm) * self.extra
        return removed

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to project as the uninterrupted one would (tensors on the CPU)."""

        def cpu(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.detach().cpu().clone()

        # refreshed at every update with refresh_every 1, the basis need not be saved; the current g_DM's own
        # direction is recomputed at every update
        basis = self.basis if self.refresh_every > 1 else None
        return {
            "memory": self.memory,
            "refresh_every": self.refresh_every,
            "energy": self.energy,
            "filled": self.filled,
            "next": self.next,
            "steps": self.steps,
            "ring": cpu(self.ring),
            "basis": cpu(basis),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        settings = (state["memory"], state["refresh_every"], state["energy"])
        if settings != (self.memory, self.refresh_every, self.energy):
            raise ValueError(f"saved gpm settings {settings} differ from this run's")

        def on_device(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.to(device)

        self.filled, self.next, self.steps = int(state["filled"]), int(state["next"]), int(state["steps"])
        self.ring, self.basis, self.extra = on_device(state["ring"]), on_device(state["basis"]), None
