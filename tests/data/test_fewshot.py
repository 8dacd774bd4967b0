"""Each seed adapts from its own few-shot episodes: disjoint blocks while the data allows."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_factory import random_episodes

from pdiff.data.fewshot import fewshot_record, load_fewshot, seed_episodes
from pdiff.errors import UsageError

FAMILY = "cheetah-vel"


def test_seeds_take_disjoint_blocks_then_seeded_draws() -> None:
    blocks = [set(seed_episodes(7, 2, seed).tolist()) for seed in (0, 1, 2)]
    assert blocks == [{0, 1}, {2, 3}, {4, 5}]
    late = seed_episodes(7, 2, 9)  # past the data: a draw of its own, reproducible
    assert len(set(late.tolist())) == 2 and late.max() < 7
    assert np.array_equal(late, seed_episodes(7, 2, 9))
    with pytest.raises(ValueError):
        seed_episodes(3, 4, 0)


def test_two_seeds_load_different_fewshot_episodes(writer, datasets_root) -> None:
    episodes = {task: random_episodes(task, 7) for task in (2, 7)}
    for task, eps in episodes.items():
        writer(FAMILY, task, "expert", eps)
    first, second = (load_fewshot(datasets_root, FAMILY, [2, 7], "expert", 3, seed) for seed in (0, 1))
    for data, seed in ((first, 0), (second, 1)):
        for task in (2, 7):
            wanted = [episodes[task][i].total_return for i in range(3 * seed, 3 * seed + 3)]
            got = data.episode_returns[data.task_episodes(task)]
            assert np.allclose(got, wanted)
    assert not np.allclose(first.episode_returns, second.episode_returns)
    record = fewshot_record(datasets_root, FAMILY, [2, 7], "expert", 3, [0, 1])
    assert record == {"seed-0": [0, 1, 2], "seed-1": [3, 4, 5]}


def test_too_few_episodes_is_a_usage_error(writer, datasets_root) -> None:
    writer(FAMILY, 2, "expert", random_episodes(0, 2))
    with pytest.raises(UsageError, match="only 2 expert episodes"):
        load_fewshot(datasets_root, FAMILY, [2], "expert", 3)
