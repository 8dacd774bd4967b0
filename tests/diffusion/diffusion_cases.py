"""Shared builders for the diffusion tests: a small denoiser, a seeded generator, the two losses, and the
gradients of the guidance rules (by plain backward, as written into .grad, as combined)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from pdiff.diffusion import VPSchedule, denoising_loss, sample
from pdiff.methods.gradient_basis import GradientBasis
from pdiff.methods.guidance import CombinedGradient, combine_gradients
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
    """A downstream-style loss: squared distance of x̂0, sampled through the differentiable chain, to a
    target."""
    _, cond = example_batch()
    x_hat = sample(denoiser, schedule, cond, (BATCH, X_DIM), generator=seeded(seed), grad=True)
    target = torch.linspace(-1.0, 1.0, X_DIM)
    return ((x_hat - target) ** 2).mean()


SCHEDULE = VPSchedule()
LossFn = Callable[[nn.Module], Tensor]


def plain_dm(model: nn.Module) -> Tensor:
    return dm_loss(model, SCHEDULE)


def plain_plm(model: nn.Module) -> Tensor:
    return chain_loss(model, SCHEDULE)


def reference_gradient(model: nn.Module, loss_fn: LossFn) -> Tensor:
    """∇loss by an ordinary backward(), independent of combine_gradients' autograd.grad path."""
    model.zero_grad(set_to_none=True)
    loss_fn(model).backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in model.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads]).clone()
    model.zero_grad(set_to_none=True)
    return flat


def written_gradient(model: nn.Module) -> Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def combine(
    model: nn.Module,
    dm: LossFn,
    plm: LossFn,
    rule: str,
    lam: float = 1.0,
    basis: GradientBasis | None = None,
) -> CombinedGradient:
    """combine_gradients of the two losses; gpm gets `basis`, by default a fresh one of memory 1."""
    if rule == "gpm" and basis is None:
        basis = GradientBasis(memory=1)
    return combine_gradients(list(model.parameters()), dm(model), plm(model), rule=rule, lam=lam, basis=basis)
