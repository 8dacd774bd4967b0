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
from pdiff.rollouts.simulators import EnvPool, Lease


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

    def normalisation(self) -> dict[str, Any]:
        return {
            "rtg_scale": self.rtg_scale,
            "state_mean": self.state_mean,
            "state_std": self.state_std,
            "max_ep_len": self.max_ep_len,
        }

    def segment_sampler(self, data: FamilyData) -> SegmentSampler:
        """K-step segments of `data`, normalised as this policy reads them."""
        return SegmentSampler(data, context_len=self.context_len, **self.normalisation())

    def prompt_bank(self, data: FamilyData) -> PromptBank:
        """Tail prompts of `data`'s episodes, normalised as this policy reads them."""
        return PromptBank(data, prompt_len=self.model.config.prompt_len, **self.normalisation())


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
    pool: EnvPool | None = None,
) -> list[EpisodeResult]:
    """Roll out `len(episode_seeds[i])` episodes of task `tasks[i]` with prompt row i, all together.

    `render_episodes` > 0 records RGB frames of the first episodes of each task, over all its rows (GIFs).
    `pool` lends simulators across calls (e.g. one per evaluation seed); without it they are built and closed
    here.
    """
    rows = [(ti, task, e, seed) for ti, task in enumerate(tasks) for e, seed in enumerate(episode_seeds[ti])]
    per_task = [
        sum(1 for _, earlier, _, _ in rows[:i] if earlier == task) for i, (_, task, _, _) in enumerate(rows)
    ]
    lender = pool if pool is not None else EnvPool()
    lease = lender.lease(
        family, [task for _, task, _, _ in rows], horizon, [n < render_episodes for n in per_task]
    )
    results = [EpisodeResult(task, e, seed, 0.0, 0, None) for _, task, e, seed in rows]
    try:
        return _run(family, policy, prompts, lease, rows, results, horizon, on_step)
    finally:
        lease.release()
        if pool is None:
            lender.close()


def _run(
    family: TaskFamily,
    policy: FrozenPolicy,
    prompts: Prompt,
    lease: Lease,
    rows: list[tuple[int, int, int, int]],  # (prompt row, task, episode, seed)
    results: list[EpisodeResult],
    horizon: int,
    on_step: Callable[[int], None] | None,
) -> list[EpisodeResult]:
    # Histories live in numpy (cheap per-row writes); each step copies only the live rows' K-step window
    # into one tensor per input. The arithmetic is float32 throughout, as the model reads it.
    n, device = len(rows), policy.device
    mean, std = policy.state_mean, policy.state_std
    states = np.zeros((n, horizon + 1, family.obs_dim), np.float32)
    actions = np.zeros((n, horizon + 1, family.act_dim), np.float32)
    rtg = np.zeros((n, horizon + 1, 1), np.float32)
    timesteps = np.zeros((n, horizon + 1), np.int64)
    rtg[:, 0] = np.float32(policy.target_return / policy.rtg_scale)
    for i, (obs, frame) in enumerate(lease.reset([row[3] for row in rows])):
        states[i, 0] = (obs - mean) / std
        if frame is not None:
            results[i].frames.append(frame)
    policy.model.eval()
    cache = policy.model.encode_prompt(prompts.to(device))
    task_row = torch.tensor([r[0] for r in rows], device=device)
    active = np.ones(n, dtype=bool)
    for t in range(horizon):
        live = np.flatnonzero(active)
        if len(live) == 0:
            break
        window = slice(max(0, t + 1 - policy.context_len), t + 1)
        inputs = (states[live, window], actions[live, window], rtg[live, window], timesteps[live, window])
        predicted = policy.model.act(
            *(torch.from_numpy(x).to(device) for x in inputs),
            None,
            replace(cache, rows=task_row[torch.from_numpy(live).to(device)]),  # each episode's task prompt
        )
        predicted = predicted.clamp(-1.0, 1.0).cpu().numpy()
        actions[live, t] = predicted
        timesteps[live, t + 1] = min(t + 1, policy.max_ep_len - 1)
        for i, (obs, reward, done, success, frame) in zip(live, lease.step(live, predicted), strict=True):
            states[i, t + 1] = (obs - mean) / std
            rtg[i, t + 1] = rtg[i, t] - np.float32(reward / policy.rtg_scale)
            result = results[i]
            result.episode_return += reward
            result.length += 1
            if success is not None:
                result.success = bool(result.success) or success
            if frame is not None:
                result.frames.append(frame)
            if done:
                active[i] = False
        if on_step is not None:
            on_step(len(live))
    return results
