"""Family datasets as contiguous training arrays: layout, returns-to-go, subsets, statistics, caching."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_factory import random_episodes

from pdiff.data import loader
from pdiff.data import minari_format as mf
from pdiff.data import minari_read as mr
from pdiff.errors import ArtifactError, UsageError

FAMILY = "metaworld-reach"
TASKS = {0: random_episodes(10, 4), 1: random_episodes(11, 3), 5: random_episodes(12, 5, obs_offset=10.0)}


@pytest.fixture
def family_root(datasets_root, writer):
    for task, episodes in TASKS.items():
        writer(FAMILY, task, "expert", episodes)
    return datasets_root


def test_steps_of_all_episodes_lie_back_to_back(family_root):
    data = loader.load_family_data(family_root, FAMILY, "expert", [5, 0, 1, 0])
    episodes = [ep for task in sorted(TASKS) for ep in TASKS[task]]
    assert data.tasks() == [0, 1, 5] and data.num_episodes == len(episodes)
    np.testing.assert_array_equal(
        data.observations, np.concatenate([ep.observations[:-1] for ep in episodes])
    )
    np.testing.assert_array_equal(data.actions, np.concatenate([ep.actions for ep in episodes]))
    np.testing.assert_allclose(data.rewards, np.concatenate([ep.rewards for ep in episodes]), rtol=1e-6)
    assert data.observations.dtype == data.actions.dtype == data.rewards.dtype == np.float32
    assert data.timesteps.dtype == data.episode_starts.dtype == np.int64

    lengths = [ep.length for ep in episodes]
    np.testing.assert_array_equal(data.episode_lengths, lengths)
    np.testing.assert_array_equal(data.episode_starts, np.cumsum([0, *lengths[:-1]]))
    np.testing.assert_array_equal(data.episode_tasks, [t for t in sorted(TASKS) for _ in TASKS[t]])
    np.testing.assert_allclose(data.episode_returns, [ep.total_return for ep in episodes], rtol=1e-6)
    np.testing.assert_array_equal(data.success, [bool(ep.infos["success"].any()) for ep in episodes])
    assert data.dataset_ids == tuple(mf.dataset_id(FAMILY, t, "expert", 0) for t in sorted(TASKS))
    assert data.content_sha256 == tuple(mf.content_sha256(TASKS[t]) for t in sorted(TASKS))

    for index, ep in enumerate(episodes):
        window = slice(data.episode_starts[index], data.episode_starts[index] + ep.length)
        np.testing.assert_array_equal(data.timesteps[window], np.arange(ep.length))
        suffix_sums = [ep.rewards[t:].sum() for t in range(ep.length)]  # undiscounted, raw
        np.testing.assert_allclose(data.returns_to_go[window], suffix_sums, rtol=1e-5, atol=1e-5)


def test_task_episodes_subset_and_episode_cap(family_root):
    data = loader.load_family_data(family_root, FAMILY, "expert", [0, 1, 5])
    np.testing.assert_array_equal(data.task_episodes(1), [4, 5, 6])
    assert data.task_episodes(3).size == 0

    only_one = data.subset([1])
    direct = loader.load_family_data(family_root, FAMILY, "expert", [1])
    for name in (
        "observations",
        "actions",
        "returns_to_go",
        "timesteps",
        "episode_starts",
        "episode_lengths",
    ):
        np.testing.assert_array_equal(getattr(only_one, name), getattr(direct, name), err_msg=name)
    assert only_one.dataset_ids == direct.dataset_ids and only_one.tasks() == [1]
    with pytest.raises(UsageError, match="not loaded"):
        data.subset([2])

    capped = loader.load_family_data(family_root, FAMILY, "expert", [0, 5], max_episodes_per_task=2)
    np.testing.assert_array_equal(capped.episode_tasks, [0, 0, 5, 5])
    np.testing.assert_array_equal(capped.episode_lengths, [ep.length for ep in TASKS[0][:2] + TASKS[5][:2]])


def test_state_stats_use_only_the_given_tasks(family_root):
    data = loader.load_family_data(family_root, FAMILY, "expert", [0, 1, 5])
    mean, std = data.state_stats([0, 1])
    train_obs = np.concatenate([ep.observations[:-1] for t in (0, 1) for ep in TASKS[t]]).astype(np.float64)
    np.testing.assert_allclose(mean, train_obs.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(std, train_obs.std(axis=0) + 1e-6, rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (data.observations.shape[1],)
    all_mean, _ = data.state_stats([0, 1, 5])
    assert np.all(all_mean > mean + 1.0)  # task 5's observations are offset by +10
    with pytest.raises(UsageError):
        data.state_stats([])


def test_cached_data_is_returned_without_rereading_until_a_dataset_changes(family_root, writer, monkeypatch):
    reads = []
    real_read = mr.read_dataset

    def counting_read(directory, **kwargs):
        reads.append(directory.name)
        return real_read(directory, **kwargs)

    monkeypatch.setattr(mr, "read_dataset", counting_read)
    first = loader.load_family_data(family_root, FAMILY, "expert", [0, 1])
    assert len(reads) == 2
    assert loader.load_family_data(family_root, FAMILY, "expert", [1, 0]) is first
    assert len(reads) == 2
    with pytest.raises(ValueError):
        first.observations[0, 0] = 1.0  # shared by every caller: read-only

    writer(FAMILY, 1, "expert", random_episodes(13, 2), version=1)  # a newer version is now the latest
    second = loader.load_family_data(family_root, FAMILY, "expert", [0, 1])
    assert second is not first and len(reads) == 4
    assert second.dataset_ids[1].endswith("expert-v1") and second.num_episodes == 4 + 2
    pinned = loader.load_family_data(family_root, FAMILY, "expert", [0, 1], version=0)
    assert pinned.num_episodes == 4 + 3


def test_missing_datasets_name_the_id_and_the_collect_command(family_root):
    with pytest.raises(ArtifactError) as caught:
        loader.load_family_data(family_root, FAMILY, "expert", [0, 9])
    assert "pdiff/metaworld-reach/task-09/expert-v*" in caught.value.message
    assert caught.value.hint == f"collect it first: pdiff collect --env {FAMILY} --kinds expert"
    with pytest.raises(ArtifactError, match="task-00/expert-v3 not found"):
        loader.load_family_data(family_root, FAMILY, "expert", [0], version=3)
    with pytest.raises(ArtifactError, match="task-00/medium-v"):
        loader.load_family_data(family_root, FAMILY, "medium", [0])
    with pytest.raises(UsageError):
        loader.load_family_data(family_root, FAMILY, "expert", [])


def test_episodes_without_success_info_give_none(datasets_root, writer):
    writer("cheetah-dir", 0, "random", random_episodes(14, 2, success=False))
    data = loader.load_family_data(datasets_root, "cheetah-dir", "random", [0])
    assert data.success is None


def test_a_damaged_dataset_stops_the_loader(family_root):
    path = family_root / mf.dataset_id(FAMILY, 1, "expert", 0) / "data" / mf.MAIN_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=str(path)):
        loader.load_family_data(family_root, FAMILY, "expert", [0, 1])
