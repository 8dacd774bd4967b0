"""A tiny teacher set-up shared by the teacher tests: short episodes and small networks."""

from __future__ import annotations

import dataclasses

from pdiff.envs import get_family
from pdiff.teachers import SACConfig

TINY_UPDATES = 151  # odd: with 2 envs (2 updates per env step) a checkpoint lands between two updates


def tiny_family(name: str = "cheetah-dir", horizon: int = 40):
    # Short episodes so that a tiny run goes through many resets and checkpoints land mid-episode.
    return dataclasses.replace(get_family(name), horizon=horizon)


def tiny_config(**overrides) -> SACConfig:
    settings = dict(
        total_updates=2 * TINY_UPDATES,
        num_envs=2,
        batch_size=32,
        hidden_sizes=(32, 32),
        buffer_size=10_000,
        learning_starts=64,
        snapshot_every=50,
        checkpoint_every=50,
        eval_every=50,
        eval_episodes=1,
        log_every=25,
    )
    return SACConfig(**{**settings, **overrides})
