"""Batched evaluation: every episode of every task stepped in lockstep, one model call per step.

The prompt of each task is encoded once (its keys and values cached, see `PromptDT.encode_prompt`); each
step feeds only the last K steps of every still-running episode. All episodes share the step index, so
early steps need no padding: a window shorter than K is exactly what masked padding would compute.
"""

from __future__ import annotations

from collections import defaultdict
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


class EnvPool:
    """Simulators kept between rollouts: building a Meta-World env costs about 0.2 s (as much as 200 steps).

    `reset(seed=...)` restores a used simulator exactly, so a reused env gives the same episode as a new one.
    Rendering envs are never pooled.
    """

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int, int], list[Any]] = defaultdict(list)

    def take(self, family: TaskFamily, task: int, horizon: int, render: bool = False) -> Any:
        if render:
            return family.make_env(task, horizon=horizon, render_mode="rgb_array")
        idle = self._idle[(family.name, task, horizon)]
        return idle.pop() if idle else family.make_env(task, horizon=horizon)

    def give_back(self, family: TaskFamily, task: int, horizon: int, env: Any) -> None:
        if env.render_mode is None:
            self._idle[(family.name, task, horizon)].append(env)
        else:
            env.close()

    def close(self) -> None:
        for envs in self._idle.values():
            for env in envs:
                env.close()
        self._idle.clear()

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

    `render_episodes` > 0 records RGB frames of the first episodes of each task (for GIFs). `pool` lends
    simulators across calls (e.g. one per evaluation seed); without it they are built and closed here.
    """
    rows = [(ti, task, e, seed) for ti, task in enumerate(tasks) for e, seed in enumerate(episode_seeds[ti])]
    lender = pool if pool is not None else EnvPool()
    envs = [lender.take(family, task, horizon, render=e < render_episodes) for _, task, e, _ in rows]
    results = [EpisodeResult(task, e, seed, 0.0, 0, None) for _, task, e, seed in rows]
    try:
        return _run(family, policy, prompts, envs, rows, results, horizon, on_step)
    finally:
        for env, (_, task, _, _) in zip(envs, rows, strict=True):
            lender.give_back(family, task, horizon, env)
        if pool is None:
            lender.close()


def _run(family, policy, prompts, envs, rows, results, horizon, on_step) -> list[EpisodeResult]:  # noqa: ANN001
    # Histories live in numpy (cheap per-row writes); each step copies only the live rows' K-step window
    # into one tensor per input. The arithmetic is float32 throughout, as the model reads it.
    n, device = len(envs), policy.device
    mean, std = policy.state_mean, policy.state_std
    states = np.zeros((n, horizon + 1, family.obs_dim), np.float32)
    actions = np.zeros((n, horizon + 1, family.act_dim), np.float32)
    rtg = np.zeros((n, horizon + 1, 1), np.float32)
    timesteps = np.zeros((n, horizon + 1), np.int64)
    rtg[:, 0] = np.float32(policy.target_return / policy.rtg_scale)
    for i, env in enumerate(envs):
        obs, _ = env.reset(seed=rows[i][3])
        states[i, 0] = (np.asarray(obs, np.float32) - mean) / std
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
        for j, i in enumerate(live):
            obs, reward, terminated, truncated, info = envs[i].step(predicted[j])
            states[i, t + 1] = (np.asarray(obs, np.float32) - mean) / std
            rtg[i, t + 1] = rtg[i, t] - np.float32(float(reward) / policy.rtg_scale)
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
