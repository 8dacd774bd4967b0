"""Prompt Diffuser's prompt ↔ vector mapping: a prompt segment becomes the denoiser's x0 (its states, actions
and rewards, flattened) and condition (its returns-to-go and timesteps); a generated x̂0 becomes a prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pdiff.data.batches import Segments
from pdiff.data.loader import FamilyData
from pdiff.models.prompt_dt import Prompt


@dataclass(frozen=True)
class SegmentCodec:
    """Maps prompt segments to the denoiser's x0 / condition and generated x̂0 back to a Prompt."""

    state_dim: int
    act_dim: int
    prompt_len: int
    reward_mean: float
    reward_std: float
    horizon: int

    @property
    def step_dim(self) -> int:
        return self.state_dim + self.act_dim + 1

    @property
    def x_dim(self) -> int:
        return self.prompt_len * self.step_dim

    @property
    def cond_dim(self) -> int:
        return 2 * self.prompt_len

    def encode(self, segments: Segments, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 (B, x_dim) and condition (B, 2H) of fully real segments (states already normalised)."""
        rewards = (segments.rewards[..., None] - self.reward_mean) / self.reward_std
        x0 = np.concatenate([segments.states, segments.actions, rewards], axis=-1).reshape(len(segments), -1)
        cond = np.concatenate([segments.returns_to_go[..., 0], segments.timesteps / self.horizon], axis=-1)
        return torch.as_tensor(x0, dtype=torch.float32, device=device), torch.as_tensor(
            cond, dtype=torch.float32, device=device
        )

    def bounds(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip range of the final x̂0: actions in [−1, 1], states and rewards unbounded."""
        low = torch.full((self.prompt_len, self.step_dim), -torch.inf, device=device)
        high = torch.full((self.prompt_len, self.step_dim), torch.inf, device=device)
        actions = slice(self.state_dim, self.state_dim + self.act_dim)
        low[:, actions], high[:, actions] = -1.0, 1.0
        return low.reshape(-1), high.reshape(-1)

    def to_prompt(self, x0: torch.Tensor, segments: Segments) -> Prompt:
        """Generated states and actions with the conditioning segment's own RTG and timesteps
        (docs/method.md)."""
        steps = x0.reshape(len(x0), self.prompt_len, self.step_dim)
        device = x0.device
        return Prompt(
            states=steps[..., : self.state_dim],
            actions=steps[..., self.state_dim : self.state_dim + self.act_dim],
            returns_to_go=torch.as_tensor(segments.returns_to_go, device=device),
            timesteps=torch.as_tensor(segments.timesteps, device=device),
            mask=torch.ones(len(x0), self.prompt_len, device=device),
        )

    def to_segments(self, x0: torch.Tensor, conditions: Segments) -> Segments:
        """Generated x̂0 as normalised Segments (ready for the PLM), with the conditions' RTG and timesteps."""
        steps = x0.reshape(len(conditions), self.prompt_len, self.step_dim).cpu().numpy()
        rewards = steps[..., -1] * self.reward_std + self.reward_mean
        return Segments(
            states=steps[..., : self.state_dim].astype(np.float32),
            actions=steps[..., self.state_dim : self.state_dim + self.act_dim].astype(np.float32),
            rewards=rewards.astype(np.float32),
            returns_to_go=conditions.returns_to_go.copy(),
            timesteps=conditions.timesteps.copy(),
            mask=np.ones_like(conditions.mask),
            tasks=conditions.tasks.copy(),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_codec(
    data: FamilyData, prompt_len: int, horizon: int, state_dim: int, act_dim: int
) -> SegmentCodec:
    """The codec of prompts of `prompt_len` steps, its rewards standardised by `data`'s."""
    rewards = data.rewards
    return SegmentCodec(
        state_dim=state_dim,
        act_dim=act_dim,
        prompt_len=prompt_len,
        reward_mean=float(rewards.mean()),
        reward_std=float(rewards.std() + 1e-6),
        horizon=horizon,
    )
