"""Random episodes and a writer shortcut for the dataset tests (imported by module name)."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np

from pdiff.data.minari_format import Episode, dataset_id, write_dataset

OBS_DIM, ACT_DIM = 20, 6
OBS_SPACE = gymnasium.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
ACT_SPACE = gymnasium.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)


def random_episodes(
    seed: int,
    count: int,
    *,
    min_len: int = 5,
    max_len: int = 30,
    success: bool = True,
    obs_offset: float = 0.0,
) -> list[Episode]:
    rng = np.random.default_rng(seed)
    episodes = []
    for index in range(count):
        steps = int(rng.integers(min_len, max_len + 1))
        terminated = bool(rng.random() < 0.3)
        infos = {"success": rng.random(steps) < 0.2} if success else {}
        episodes.append(
            Episode(
                observations=(rng.normal(size=(steps + 1, OBS_DIM)) + obs_offset).astype(np.float32),
                actions=rng.uniform(-1, 1, size=(steps, ACT_DIM)).astype(np.float32),
                rewards=rng.normal(size=steps),
                terminations=np.arange(steps) == steps - 1 if terminated else np.zeros(steps, bool),
                truncations=np.zeros(steps, bool) if terminated else np.arange(steps) == steps - 1,
                infos=infos,
                seed=1000 * seed + index,
            )
        )
    return episodes


def write(
    root: Path, family: str, task: int, kind: str, episodes: list[Episode], version: int = 0, **extra
) -> Path:
    return write_dataset(
        root,
        dataset_id(family, task, kind, version),
        episodes,
        observation_space=OBS_SPACE,
        action_space=ACT_SPACE,
        pdiff_block={"family": family, "task_id": task, "seed": 0},
        algorithm_name="random-test",
        **extra,
    )
