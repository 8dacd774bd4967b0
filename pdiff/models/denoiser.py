"""The ε-network of the prompt generator: Diffusion-QL's MLP template (docs/method.md, [ours]).

ε̂(x, n, c) = MLP(concat[x, t_emb(n), c]) with `layers` hidden Linear + Mish layers of width `hidden` and a
linear output of size dim(x); t_emb = sinusoidal(time_embed) → Linear(time_embed, 2·time_embed) → Mish →
Linear(2·time_embed, time_embed). At width 256 it has 0.21–0.25M parameters for our environments; width 200
gives 0.14–0.18M, closer to the paper's 0.17M.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from pdiff.models.precision import Autocast, autocast_method


@dataclass(frozen=True)
class DenoiserConfig:
    x_dim: int
    cond_dim: int
    hidden: int = 256
    layers: int = 3
    time_embed: int = 16

    def __post_init__(self) -> None:
        for name in ("x_dim", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"DenoiserConfig.{name} = {getattr(self, name)} must be positive")
        if self.cond_dim < 0:
            raise ValueError(f"DenoiserConfig.cond_dim = {self.cond_dim} must not be negative")
        if self.time_embed < 4 or self.time_embed % 2:
            raise ValueError(f"DenoiserConfig.time_embed = {self.time_embed} must be even and at least 4")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DenoiserConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DenoiserConfig keys: {', '.join(unknown)}")
        return cls(**d)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sin/cos features of a scalar step index: (B,) -> (B, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))
        self.register_buffer("frequencies", frequencies, persistent=False)

    def forward(self, n: Tensor) -> Tensor:
        angles = n.to(self.frequencies.dtype)[:, None] * self.frequencies[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class Denoiser(Autocast, nn.Module):
    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        width = config.time_embed
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(width), nn.Linear(width, 2 * width), nn.Mish(), nn.Linear(2 * width, width)
        )
        layers: list[nn.Module] = []
        in_features = config.x_dim + width + config.cond_dim
        for _ in range(config.layers):
            layers += [nn.Linear(in_features, config.hidden), nn.Mish()]
            in_features = config.hidden
        self.mid = nn.Sequential(*layers)
        self.out = nn.Linear(config.hidden, config.x_dim)

    @autocast_method
    def forward(self, x: Tensor, n: Tensor, cond: Tensor) -> Tensor:
        """ε̂ (B, x_dim) for noisy x (B, x_dim) at diffusion steps n (B,) in 1..N, condition cond
        (B, cond_dim)."""
        if x.shape[-1] != self.config.x_dim or cond.shape[-1] != self.config.cond_dim:
            raise ValueError(
                f"denoiser built for x_dim {self.config.x_dim} / cond_dim {self.config.cond_dim} got "
                f"x {tuple(x.shape)} and cond {tuple(cond.shape)}"
            )
        features = torch.cat((x, self.time_mlp(n).to(x.dtype), cond.to(x.dtype)), dim=-1)
        return self.out(self.mid(features)).to(x.dtype)


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter values in module (only those requiring grad with trainable_only)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
