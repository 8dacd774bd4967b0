"""Stateless diffusion maths for the prompt generator: VP schedule, forward noising, reverse chain.

Our reading of Prompt Diffuser (docs/method.md; [ours]): Diffusion-QL's variance-preserving
schedule with N = 5 steps, ε-prediction (or x0-prediction, `VPSchedule.prediction`), DDPM ancestral
reverse steps. The whole reverse chain can stay in the autograd graph, because the frozen Prompt-DT's loss is
back-propagated through it into the denoiser.

Steps are numbered n = 1..N as in the paper; tensors indexed by step hold step n at index n − 1. Nothing here
owns parameters: the network is any callable `denoiser(x, n, cond) -> ε̂` (or x̂0; see `pdiff.models.denoiser`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from pdiff.errors import UsageError

# ε̂ (or x̂0) = denoiser(x (B, D), n (B,) long in 1..N, cond (B, C))
EpsilonModel = Callable[[Tensor, Tensor, Tensor], Tensor]
Prediction = Literal["epsilon", "x0"]  # what the network predicts (diffusers' `prediction_type`)
PREDICTIONS: tuple[str, ...] = get_args(Prediction)


@dataclass(frozen=True)
class VPSchedule:
    """Diffusion-QL's variance-preserving schedule: α_n = exp(−b_min/N − ½(b_max − b_min)(2n − 1)/N²).

    For N = 5 the betas are ≈ [0.196, 0.459, 0.636, 0.755, 0.835].
    """

    steps: int = 5
    beta_min: float = 0.1
    beta_max: float = 10.0
    prediction: Prediction = "epsilon"  # what runs recorded without one were trained with

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise UsageError(f"diffusion steps {self.steps!r} must be a positive integer", "use e.g. 5")
        if not 0.0 <= self.beta_min <= self.beta_max or not math.isfinite(self.beta_max):
            raise UsageError(
                f"beta_min {self.beta_min} / beta_max {self.beta_max} must satisfy 0 <= beta_min <= beta_max",
                "use the Diffusion-QL defaults 0.1 / 10",
            )
        if self.beta_max == 0.0:
            raise UsageError("beta_max 0 adds no noise", "use the Diffusion-QL defaults 0.1 / 10")
        if self.prediction not in PREDICTIONS:
            raise UsageError(
                f"prediction {self.prediction!r} is not one of {', '.join(PREDICTIONS)}", "use epsilon or x0"
            )

    # Python floats in double precision; the tensor properties below are float32 copies of these.
    @cached_property
    def _alphas(self) -> tuple[float, ...]:
        n_steps, spread = self.steps, self.beta_max - self.beta_min
        return tuple(
            math.exp(-self.beta_min / n_steps - 0.5 * spread * (2 * n - 1) / n_steps**2)
            for n in range(1, n_steps + 1)
        )

    @cached_property
    def _alphas_cumprod(self) -> tuple[float, ...]:
        return tuple(math.prod(self._alphas[: n + 1]) for n in range(self.steps))

    @property
    def betas(self) -> Tensor:
        """(N,) float32, β_n at index n − 1."""
        return torch.tensor([1.0 - a for a in self._alphas], dtype=torch.float32)

    @property
    def alphas(self) -> Tensor:
        """(N,) float32, α_n = 1 − β_n."""
        return torch.tensor(self._alphas, dtype=torch.float32)

    @property
    def alphas_cumprod(self) -> Tensor:
        """(N,) float32, ᾱ_n = α_1 ⋯ α_n."""
        return torch.tensor(self._alphas_cumprod, dtype=torch.float32)

    def _check_step(self, n: int) -> None:
        if not 1 <= n <= self.steps:
            raise ValueError(f"diffusion step {n} is outside 1..{self.steps}")

    def add_noise(self, x0: Tensor, noise: Tensor, n: Tensor) -> Tensor:
        """x^n = √ᾱ_n x0 + √(1 − ᾱ_n) ε, with n (B,) long in 1..N per row of x0 (B, ...)."""
        if n.shape != x0.shape[:1]:
            raise ValueError(f"step indices have shape {tuple(n.shape)}, expected ({x0.shape[0]},)")
        if n.numel() and (int(n.min()) < 1 or int(n.max()) > self.steps):
            raise ValueError(f"diffusion steps {n.tolist()} are outside 1..{self.steps}")
        alpha_bar = self.alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[n - 1]
        alpha_bar = alpha_bar.view(-1, *([1] * (x0.dim() - 1)))
        return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise

    def posterior_std(self, n: int) -> float:
        """σ_n = √(β_n (1 − ᾱ_{n−1}) / (1 − ᾱ_n)) of the ancestral step from n to n − 1; σ_1 = 0 (ᾱ_0 = 1)."""
        self._check_step(n)
        if n == 1:
            return 0.0
        alpha_bar, alpha_bar_prev = self._alphas_cumprod[n - 1], self._alphas_cumprod[n - 2]
        beta = 1.0 - self._alphas[n - 1]
        return math.sqrt(beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar))

    def epsilon_from_x0(self, x_n: Tensor, x0: Tensor, n: int) -> Tensor:
        """The ε that takes x0 to x_n at step n: (x_n − √ᾱ_n x0) / √(1 − ᾱ_n)."""
        self._check_step(n)
        alpha_bar = self._alphas_cumprod[n - 1]
        return (x_n - math.sqrt(alpha_bar) * x0) / math.sqrt(1.0 - alpha_bar)

    def reverse_step(self, x_n: Tensor, eps: Tensor, n: int, noise: Tensor | None) -> Tensor:
        """x^{n−1} = (x^n − β_n/√(1 − ᾱ_n) · ε̂) / √α_n + σ_n z; differentiable in x_n and eps.

        `noise` z is ignored at n = 1 (σ_1 = 0) and may be None there.
        """
        self._check_step(n)
        alpha, alpha_bar = self._alphas[n - 1], self._alphas_cumprod[n - 1]
        mean = (x_n - ((1.0 - alpha) / math.sqrt(1.0 - alpha_bar)) * eps) / math.sqrt(alpha)
        sigma = self.posterior_std(n)
        if sigma == 0.0:
            return mean
        if noise is None:
            raise ValueError(f"reverse step {n} needs noise (only step 1 is deterministic)")
        return mean + sigma * noise


def _randn(shape: Sequence[int], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal noise on like's device and dtype, drawn on the generator's device when one is given.

    Drawing on the generator's device keeps a seeded CPU generator reproducible whatever device trains.
    """
    if generator is None:
        return torch.randn(tuple(shape), device=like.device, dtype=like.dtype)
    noise = torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=like.dtype)
    return noise.to(like.device)


def sample(
    denoiser: EpsilonModel,
    schedule: VPSchedule,
    cond: Tensor,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    clip: tuple[Tensor, Tensor] | None = None,
    grad: bool = False,
) -> Tensor:
    """x̂0 (shape) from x^N ~ N(0, I) through N reverse steps conditioned on cond (B, C), B = shape[0].

    With grad=True every step stays in the autograd graph (the PLM loss back-propagates through the chain);
    otherwise the chain runs under no_grad. `clip` = (low, high), broadcastable to x, bounds the final x̂0
    (entries clipped there pass no gradient) and, for an x0-predicting network, its prediction at every step.
    """
    if cond.dim() < 1 or cond.shape[0] != shape[0]:
        raise ValueError(f"condition batch {tuple(cond.shape)} does not match sample shape {tuple(shape)}")
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        x = _randn(shape, generator, cond)
        for n in range(schedule.steps, 0, -1):
            steps = torch.full((shape[0],), n, dtype=torch.long, device=cond.device)
            predicted = denoiser(x, steps, cond)
            if schedule.prediction == "x0":
                if clip is not None:
                    predicted = torch.clamp(predicted, min=clip[0].to(x), max=clip[1].to(x))
                eps = schedule.epsilon_from_x0(x, predicted, n)
            else:
                eps = predicted
            noise = _randn(shape, generator, cond) if n > 1 else None
            x = schedule.reverse_step(x, eps, n, noise)
        if clip is not None:
            low, high = clip
            x = torch.clamp(x, min=low.to(x), max=high.to(x))
    return x


def denoising_loss(
    denoiser: EpsilonModel,
    schedule: VPSchedule,
    x0: Tensor,
    cond: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L_DM: mean squared error between ε and ε̂(√ᾱ_n x0 + √(1 − ᾱ_n) ε, n, cond), n ~ U{1..N} per row
    (between x0 and x̂0 for an x0-predicting network)."""
    batch = x0.shape[0]
    if generator is None:
        n = torch.randint(1, schedule.steps + 1, (batch,), device=x0.device)
    else:
        n = torch.randint(1, schedule.steps + 1, (batch,), generator=generator, device=generator.device)
        n = n.to(x0.device)
    noise = _randn(x0.shape, generator, x0)
    target = x0 if schedule.prediction == "x0" else noise
    return F.mse_loss(denoiser(schedule.add_noise(x0, noise, n), n, cond), target)
