"""The behaviour policies that produce each dataset kind, and the episode loop a collect worker runs.

Everything here is picklable and seeded per episode, so the same seed gives the same episodes whichever
worker process runs them and in whatever order: datasets are byte-identical across runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pdiff.data.minari_format import Episode
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily

if TYPE_CHECKING:
    import gymnasium

KINDS = ("expert", "medium", "random", "prompt-expert")
# Uniform actions under evaluation's early termination: only measured, for the normalised score's low end,
# where the stored random episodes run whole (ant-dir); never written as a dataset.
REFERENCE_RANDOM = "random-reference"
_KIND_INDEX = {kind: i for i, kind in enumerate((*KINDS, REFERENCE_RANDOM))}

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class PolicySpec:
    """How one dataset kind is produced: which actor, and how much Gaussian action noise on top."""

    kind: str
    source: str  # "scripted" (Meta-World expert) | "teacher" (SAC checkpoint) | "uniform"
    noise_std: float = 0.0
    teacher_dir: str | None = None
    # ant-dir: weak policies fall over within ~14 steps; their data is collected without early termination
    terminate_when_unhealthy: bool = True


@dataclass(frozen=True)
class TaskJob:
    family: str
    task_id: int
    horizon: int
    seed: int
    episodes: tuple[tuple[PolicySpec, int], ...]  # (policy, number of episodes) per kind


def episode_seed(seed: int, task_id: int, kind: str, index: int) -> int:
    """A reset seed that depends only on (run seed, task, kind, episode index)."""
    state = np.random.SeedSequence([seed, task_id, _KIND_INDEX.get(kind, 99), index]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def build_policy(spec: PolicySpec, family: TaskFamily, task_id: int) -> Policy:
    low, high = -1.0, 1.0
    if spec.source == "uniform":
        act_dim = family.act_dim
        return lambda obs, rng: rng.uniform(low, high, size=act_dim).astype(np.float32)
    if spec.source == "scripted":
        from pdiff.envs.metaworld_expert import ScriptedExpert

        expert = ScriptedExpert(family, task_id)
        base: Callable[[np.ndarray], np.ndarray] = expert.act
    elif spec.source == "teacher":
        from pdiff.teachers.policy import TeacherPolicy

        if spec.teacher_dir is None:
            raise ValueError("teacher policy needs teacher_dir")
        teacher = TeacherPolicy.load(Path(spec.teacher_dir))
        condition = family.task_condition(task_id)[None, :]

        def base(obs: np.ndarray) -> np.ndarray:
            return teacher.act(obs[None, :], condition, deterministic=True)[0]

    else:
        raise ValueError(f"unknown policy source {spec.source}")

    def noisy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        action = np.asarray(base(obs), dtype=np.float32)
        if spec.noise_std > 0:
            action = action + rng.normal(0.0, spec.noise_std, size=action.shape).astype(np.float32)
        return np.clip(action, low, high).astype(np.float32)

    return noisy


def run_episode(env: gymnasium.Env, policy: Policy, seed: int) -> Episode:  # any gymnasium env
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terms, truncs, success = [obs], [], [], [], [], []
    while True:
        action = policy(obs, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        if "success" in info:
            success.append(bool(info["success"]))
        if terminated or truncated:
            break
    infos = {"success": np.asarray(success, dtype=bool)} if success else {}
    return Episode(
        observations=np.asarray(observations, dtype=np.float32),
        actions=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        infos=infos,
        seed=seed,
    )


def collect_task(job: TaskJob) -> tuple[int, dict[str, list[Episode]]]:
    """Worker entry point: every requested kind of one task. Returns (task_id, {kind: episodes})."""
    family = get_family(job.family)
    result: dict[str, list[Episode]] = {}
    envs: dict[bool, object] = {}
    try:
        for spec, count in job.episodes:
            if spec.terminate_when_unhealthy not in envs:
                envs[spec.terminate_when_unhealthy] = family.make_env(
                    job.task_id, horizon=job.horizon, terminate_when_unhealthy=spec.terminate_when_unhealthy
                )
            env = envs[spec.terminate_when_unhealthy]
            policy = build_policy(spec, family, job.task_id)
            result[spec.kind] = [
                run_episode(env, policy, episode_seed(job.seed, job.task_id, spec.kind, i))
                for i in range(count)
            ]
    finally:
        for env in envs.values():
            env.close()  # type: ignore[attr-defined]
    return job.task_id, result


def medium_target(random: float, expert: float, fraction: float) -> float:
    """The medium kind's return: `fraction` of the way from random to expert (MuJoCo and Meta-World alike)."""
    return random + fraction * (expert - random)


def calibrate_medium_noise(
    family: TaskFamily,
    fraction: float,
    *,
    tasks: list[int],
    horizon: int,
    seed: int,
    episodes: int = 2,
    highest: float = 4.0,
    iterations: int = 8,
) -> dict[str, float]:
    """Meta-World's medium kind: the scripted expert's action-noise std whose mean return on `tasks` is
    nearest random + fraction·(expert − random), the target the MuJoCo families' medium snapshot is chosen
    by. Bisection on [0, `highest`]; every trial replays the same episode seeds, so the return falls
    smoothly as the noise grows instead of jumping with the draws."""
    envs = {task: family.make_env(task, horizon=horizon) for task in tasks}

    def mean_return(spec: PolicySpec) -> float:
        returns = [
            run_episode(envs[task], build_policy(spec, family, task), episode_seed(seed, task, "medium", i))
            for task in tasks
            for i in range(episodes)
        ]
        return float(np.mean([episode.total_return for episode in returns]))

    try:
        expert = mean_return(PolicySpec("expert", "scripted"))
        random = mean_return(PolicySpec("random", "uniform"))
        target = medium_target(random, expert, fraction)
        low, high = 0.0, highest
        best = (abs(expert - target), 0.0, expert)  # (distance to the target, noise, return)
        for _ in range(iterations):
            noise = (low + high) / 2
            achieved = mean_return(PolicySpec("medium", "scripted", noise))
            best = min(best, (abs(achieved - target), noise, achieved))
            low, high = (noise, high) if achieved > target else (low, noise)
    finally:
        for env in envs.values():
            env.close()
    return {
        "noise": best[1],
        "return": best[2],
        "target_return": target,
        "expert_return": expert,
        "random_return": random,
    }
