"""Shared builders for the diffusion tests: a small denoiser, a seeded generator, the two losses."""

from __future__ import annotations

import torch
from torch import Tensor

from pdiff.diffusion import VPSchedule, denoising_loss, sample
from pdiff.models.denoiser import Denoiser, DenoiserConfig

X_DIM, COND_DIM, BATCH = 6, 3, 8


def small_denoiser(seed: int = 0, hidden: int = 32) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(DenoiserConfig(X_DIM, COND_DIM, hidden=hidden, layers=2))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def example_batch(seed: int = 1) -> tuple[Tensor, Tensor]:
    """x0 (BATCH, X_DIM) and cond (BATCH, COND_DIM)."""
    generator = seeded(seed)
    return torch.randn(BATCH, X_DIM, generator=generator), torch.randn(BATCH, COND_DIM, generator=generator)


def dm_loss(denoiser: Denoiser, schedule: VPSchedule, seed: int = 2) -> Tensor:
    x0, cond = example_batch()
    return denoising_loss(denoiser, schedule, x0, cond, generator=seeded(seed))


def chain_loss(denoiser: Denoiser, schedule: VPSchedule, seed: int = 3) -> Tensor:
    """A downstream-style loss: squared distance of x̂0, sampled through the differentiable chain, to a target."""
    _, cond = example_batch()
    x_hat = sample(denoiser, schedule, cond, (BATCH, X_DIM), generator=seeded(seed), grad=True)
    target = torch.linspace(-1.0, 1.0, X_DIM)
    return ((x_hat - target) ** 2).mean()
