"""Batched evaluation: every episode of every task stepped in lockstep, one model call per step.

The prompt of each task is encoded once (its keys and values cached, see `PromptDT.encode_prompt`); each
step feeds only the last K steps of every still-running episode. All episodes share the step index, so
early steps need no padding: a window shorter than K is exactly what masked padding would compute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdiff.data.batches import PromptBank, SegmentSampler
from pdiff.data.loader import FamilyData
from pdiff.envs.base import TaskFamily
from pdiff.models.checkpoint import load_inference
from pdiff.models.prompt_dt import Prompt, PromptDT, PromptDTConfig


@dataclass(frozen=True)
class FrozenPolicy:
    """A trained Prompt-DT plus what inference needs to feed it (from its model_config.json)."""

    model: PromptDT
    state_mean: np.ndarray
    state_std: np.ndarray
    rtg_scale: float
    target_return: float
    device: torch.device

    @property
    def context_len(self) -> int:
        return self.model.config.context_len

    @property
    def max_ep_len(self) -> int:
        return self.model.config.max_ep_len

    def _normalisation(self) -> dict[str, Any]:
        return {"rtg_scale": self.rtg_scale, "state_mean": self.state_mean, "state_std": self.state_std,
                "max_ep_len": self.max_ep_len}  # fmt: skip

    def segment_sampler(self, data: FamilyData) -> SegmentSampler:
        """K-step segments of `data`, normalised as this policy reads them."""
        return SegmentSampler(data, context_len=self.context_len, **self._normalisation())

    def prompt_bank(self, data: FamilyData) -> PromptBank:
        """Tail prompts of `data`'s episodes, normalised as this policy reads them."""
        return PromptBank(data, prompt_len=self.model.config.prompt_len, **self._normalisation())


def load_policy(checkpoint: Path, device: torch.device) -> tuple[FrozenPolicy, dict[str, Any]]:
    def build(config: dict[str, Any]) -> PromptDT:
        return PromptDT(PromptDTConfig.from_dict(config["architecture"]))

    model, config = load_inference(checkpoint, build)
    model.to(device).eval()
    policy = FrozenPolicy(
        model=model,
        state_mean=np.asarray(config["state_mean"], dtype=np.float32),
        state_std=np.asarray(config["state_std"], dtype=np.float32),
        rtg_scale=float(config["rtg_scale"]),
        target_return=float(config["eval_target"]),
        device=device,
    )
    return policy, config


@dataclass
class EpisodeResult:
    task: int
    episode: int
    seed: int
    episode_return: float
    length: int
    success: bool | None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


def rollout(
    family: TaskFamily,
    policy: FrozenPolicy,
    prompts: Prompt,
    tasks: Sequence[int],
    episode_seeds: Sequence[Sequence[int]],
    *,
    horizon: int,
    render_episodes: int = 0,
    on_step: Callable[[int], None] | None = None,
    envs: Sequence[Any] | None = None,
) -> list[EpisodeResult]:
    """Roll out `len(episode_seeds[i])` episodes of task `tasks[i]` with prompt row i, all together.

    `render_episodes` > 0 records RGB frames of the first episodes of each task (for GIFs). `envs`, one per
    episode in that order and made for at least `horizon` steps, are reset and reused (and left open)
    instead of made: a caller that rolls out many times saves the simulators' construction.
    """
    rows = [(ti, task, e, seed) for ti, task in enumerate(tasks) for e, seed in enumerate(episode_seeds[ti])]
    owned = envs is None
    if envs is None:
        envs = [
            family.make_env(task, horizon=horizon, render_mode="rgb_array" if e < render_episodes else None)
            for _, task, e, _ in rows
        ]
    elif len(envs) != len(rows):
        raise ValueError(f"{len(envs)} envs for {len(rows)} episodes")
    results = [EpisodeResult(task, e, seed, 0.0, 0, None) for _, task, e, seed in rows]
    try:
        return _run(family, policy, prompts, envs, rows, results, horizon, on_step)
    finally:
        for env in envs if owned else ():
            env.close()


def _run(family, policy, prompts, envs, rows, results, horizon, on_step) -> list[EpisodeResult]:  # noqa: ANN001
    n, device = len(envs), policy.device
    mean = torch.as_tensor(policy.state_mean, dtype=torch.float32)
    std = torch.as_tensor(policy.state_std, dtype=torch.float32)
    states = torch.zeros(n, horizon + 1, family.obs_dim)
    actions = torch.zeros(n, horizon + 1, family.act_dim)
    rtg = torch.zeros(n, horizon + 1, 1)
    timesteps = torch.zeros(n, horizon + 1, dtype=torch.long)
    rtg[:, 0] = policy.target_return / policy.rtg_scale
    for i, env in enumerate(envs):
        obs, _ = env.reset(seed=rows[i][3])
        states[i, 0] = (torch.as_tensor(obs, dtype=torch.float32) - mean) / std
        if env.render_mode == "rgb_array":
            results[i].frames.append(_frame(family, env))
    policy.model.eval()
    cache = policy.model.encode_prompt(prompts.to(device))
    task_row = torch.tensor([r[0] for r in rows], device=device)
    active = np.ones(n, dtype=bool)
    for t in range(horizon):
        live = np.flatnonzero(active)
        if len(live) == 0:
            break
        lo = max(0, t + 1 - policy.context_len)
        window = slice(lo, t + 1)
        index = torch.as_tensor(live)
        predicted = policy.model.act(
            states[index, window].to(device),
            actions[index, window].to(device),
            rtg[index, window].to(device),
            timesteps[index, window].to(device),
            None,
            replace(cache, rows=task_row[index.to(device)]),  # each episode reads its task's cached prompt
        )
        predicted = predicted.clamp(-1.0, 1.0).cpu()
        for j, i in enumerate(live):
            action = predicted[j].numpy()
            obs, reward, terminated, truncated, info = envs[i].step(action)
            actions[i, t] = predicted[j]
            states[i, t + 1] = (torch.as_tensor(obs, dtype=torch.float32) - mean) / std
            rtg[i, t + 1] = rtg[i, t] - float(reward) / policy.rtg_scale
            timesteps[i, t + 1] = min(t + 1, policy.max_ep_len - 1)
            result = results[i]
            result.episode_return += float(reward)
            result.length += 1
            if "success" in info:
                result.success = bool(result.success) or bool(info["success"])
            if envs[i].render_mode == "rgb_array":
                result.frames.append(_frame(family, envs[i]))
            if terminated or truncated:
                active[i] = False
        if on_step is not None:
            on_step(len(live))
    return results


def _frame(family: TaskFamily, env) -> np.ndarray:  # noqa: ANN001
    return np.asarray(env.render())  # the families return upright frames (Meta-World's are flipped there)
