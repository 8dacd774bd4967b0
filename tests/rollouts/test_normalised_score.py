"""The normalised score, 100 · (R − R_random) / (R_expert − R_random), on a case computed by hand."""

from __future__ import annotations

import pytest

from pdiff.rollouts.rollout import EpisodeResult
from pdiff.rollouts.scoring import normalised, summarise


def _episode(task: int, episode: int, episode_return: float) -> EpisodeResult:
    return EpisodeResult(
        task=task, episode=episode, seed=0, episode_return=episode_return, length=10, success=None
    )


def test_the_formula_on_single_values():
    assert normalised(55.0, (10.0, 100.0)) == pytest.approx(50.0)  # halfway from random to expert
    assert normalised(10.0, (10.0, 100.0)) == 0.0 and normalised(100.0, (10.0, 100.0)) == 100.0
    assert normalised(-80.0, (-100.0, -20.0)) == pytest.approx(25.0)  # negative returns (cheetah-vel)
    assert normalised(130.0, (10.0, 100.0)) == pytest.approx(400 / 3)  # above the expert: over 100
    assert normalised(5.0, (None, 100.0)) is None and normalised(5.0, (3.0, 3.0)) is None


def test_summary_averages_episodes_then_normalises_per_task_then_averages():
    # Task 2: random 0, expert 200; task 7: random −50, expert 50. Two seeds, two episodes each.
    references = {2: (0.0, 200.0), 7: (-50.0, 50.0)}
    returns = {(0, 2): [100.0, 140.0], (0, 7): [0.0, 20.0], (1, 2): [200.0, 180.0], (1, 7): [-50.0, -30.0]}
    episodes, seed_of = [], []
    for (seed, task), values in returns.items():
        episodes += [_episode(task, i, v) for i, v in enumerate(values)]
        seed_of += [seed] * len(values)
    summary = summarise([0, 1], [2, 7], episodes, seed_of, references)
    # seed 0: task 2 mean 120 -> 60, task 7 mean 10 -> 60;
    # seed 1: task 2 mean 190 -> 95, task 7 mean -40 -> 10
    assert summary["normalized_per_seed"] == pytest.approx([60.0, 52.5])
    assert summary["normalized_mean"] == pytest.approx(56.25)
    assert summary["normalized_std"] == pytest.approx(7.5 / 2**0.5)  # sample std (ddof 1) of 60 and 52.5
    # per task over both seeds: task 2 mean 155 -> 77.5; task 7 mean -15 -> 35
    assert summary["per_task"]["2"]["normalized"] == pytest.approx(77.5)
    assert summary["per_task"]["7"]["normalized"] == pytest.approx(35.0)
    assert summary["return_per_seed"] == pytest.approx([65.0, 75.0])
