"""The compatibility oracle: minari itself (in the dev extra, never skipped) reads what pdiff writes: datasets
from the writer and the datasets a real `pdiff collect` wrote."""

from __future__ import annotations

import json

import minari
import numpy as np
import pytest
from dataset_factory import ACT_SPACE, OBS_SPACE, random_episodes, write
from minari.namespace import get_namespace_metadata, list_local_namespaces

from pdiff.data import minari_format as mf
from pdiff.data.loader import load_family_data


@pytest.fixture
def minari_root(datasets_root, monkeypatch):
    datasets_root.mkdir(parents=True)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(datasets_root))
    return datasets_root


@pytest.mark.parametrize(
    ("family", "kind"), [("cheetah-vel", "prompt-expert"), ("metaworld-reach", "expert")]
)
def test_minari_loads_lists_and_describes_our_datasets(minari_root, family, kind):
    episodes = random_episodes(20, 3)
    write(minari_root, family, 7, kind, episodes, ref_min_score=-100.0, ref_max_score=0.0)
    mf.write_namespace_metadata(minari_root, family, {"tasks": [7], "split": {"train": [7], "test": []}})
    dataset_id = mf.dataset_id(family, 7, kind, 0)

    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == 3 and dataset.total_steps == sum(ep.length for ep in episodes)
    assert dataset.observation_space == OBS_SPACE and dataset.action_space == ACT_SPACE
    assert (dataset.spec.namespace, dataset.spec.dataset_name, dataset.spec.version) == (
        f"pdiff/{family}/task-07",
        kind,
        0,
    )
    for ours, theirs in zip(episodes, dataset.iterate_episodes(), strict=True):
        assert theirs.observations.shape == ours.observations.shape  # (T+1, d_s): initial observation kept
        for name in mf.STEP_ARRAYS:
            np.testing.assert_array_equal(getattr(theirs, name), getattr(ours, name), err_msg=name)
        np.testing.assert_array_equal(theirs.infos["success"], ours.infos["success"])

    episode_metadata = list(dataset.storage.get_episode_metadata([0, 2]))
    assert [m["seed"] for m in episode_metadata] == [episodes[0].seed, episodes[2].seed]
    assert episode_metadata[1]["rewards_sum"] == pytest.approx(episodes[2].total_return)
    metadata = dataset.storage.metadata
    assert metadata["pdiff"]["content_sha256"] == mf.content_sha256(episodes)
    assert metadata["algorithm_name"] == "random-test"
    assert minari.get_normalized_score(dataset, np.array([-50.0]))[0] == pytest.approx(0.5)

    assert dataset_id in minari.list_local_datasets()
    assert f"pdiff/{family}" in list_local_namespaces()
    assert get_namespace_metadata(f"pdiff/{family}")["tasks"] == [7]


def test_a_crashed_write_does_not_break_minaris_listing(minari_root):
    write(minari_root, "cheetah-vel", 0, "expert", random_episodes(21, 1))
    leftover = minari_root / "pdiff/cheetah-vel/task-00/.expert-v1.tmp-4242/data"
    leftover.mkdir(parents=True)
    (leftover / mf.METADATA_FILE).write_text(json.dumps({"dataset_id": "half-written"}))
    assert list(minari.list_local_datasets()) == ["pdiff/cheetah-vel/task-00/expert-v0"]


@pytest.mark.metaworld
@pytest.mark.parametrize("kind", ["expert", "random", "prompt-expert"])
def test_minari_loads_what_pdiff_collect_wrote(collected_template, monkeypatch, kind):
    datasets = collected_template / "datasets"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(datasets))
    ours = load_family_data(datasets, "metaworld-reach", kind, [0])
    dataset = minari.load_dataset(mf.dataset_id("metaworld-reach", 0, kind, 0))
    assert dataset.total_episodes == ours.num_episodes and dataset.total_steps == ours.num_steps
    assert dataset.observation_space.shape == (39,) and dataset.action_space.shape == (4,)
    for index, theirs in enumerate(dataset.iterate_episodes()):
        steps = slice(ours.episode_starts[index], ours.episode_starts[index] + ours.episode_lengths[index])
        np.testing.assert_array_equal(theirs.observations[:-1], ours.observations[steps])
        np.testing.assert_array_equal(theirs.actions, ours.actions[steps])
        np.testing.assert_array_equal(theirs.rewards.astype(np.float32), ours.rewards[steps])  # stored as f64
        assert theirs.rewards.sum() == pytest.approx(float(ours.episode_returns[index]), rel=1e-5)
    assert f"pdiff/metaworld-reach/task-00/{kind}-v0" in minari.list_local_datasets()
