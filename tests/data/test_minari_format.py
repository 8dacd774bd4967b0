"""The Minari-layout dataset writer and reader: round trip, determinism, immutability, damage detection."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from dataset_factory import ACT_DIM, OBS_DIM, random_episodes, write

from pdiff.data import minari_format as mf
from pdiff.data import minari_read as mr
from pdiff.errors import ArtifactError, UsageError
from pdiff.workspace.atomic import sha256_file

FAMILY = "cheetah-vel"


def assert_same_episodes(got: list[mf.Episode], want: list[mf.Episode]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        for name in mf.STEP_ARRAYS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert sorted(a.infos) == sorted(b.infos)
        for key in a.infos:
            np.testing.assert_array_equal(a.infos[key], b.infos[key])
        assert a.seed == b.seed


def test_dataset_ids_follow_the_minari_grammar_and_parse_back():
    assert mf.dataset_id("cheetah-vel", 7, "expert", 0) == "pdiff/cheetah-vel/task-07/expert-v0"
    assert mf.dataset_id("metaworld-pick-place", 41, "prompt-expert", 12) == (
        "pdiff/metaworld-pick-place/task-41/prompt-expert-v12"
    )
    assert mf.parse_dataset_id("pdiff/metaworld-reach/task-03/prompt-expert-v2") == (
        "metaworld-reach",
        3,
        "prompt-expert",
        2,
    )
    assert mf.dataset_dir(Path("/r"), "pdiff/ant-dir/task-06/medium-v1") == Path(
        "/r/pdiff/ant-dir/task-06/medium-v1"
    )
    for family, task, kind, version in [("a/b", 0, "x", 0), ("f", -1, "x", 0), ("f", 0, "ex pert", 0)]:
        with pytest.raises(UsageError):
            mf.dataset_id(family, task, kind, version)
    with pytest.raises(UsageError):
        mf.parse_dataset_id("cheetah/expert-v0")


def test_round_trip_keeps_every_array_dtype_info_seed_and_metadata(datasets_root):
    episodes = random_episodes(0, 6)
    episodes[2].seed = None
    for ep in episodes:
        ep.infos["obj_to_target"] = np.linspace(0, 1, ep.length * 3).reshape(-1, 3)
    directory = write(
        datasets_root,
        FAMILY,
        7,
        "expert",
        episodes,
        description="test data",
        code_permalink="abc123",
        ref_min_score=-300.0,
        ref_max_score=-20.0,
        author="pdiff tests",
        requirements=["mujoco==3.3.0"],
    )
    assert directory == datasets_root / "pdiff/cheetah-vel/task-07/expert-v0"

    got, metadata = mr.read_dataset(directory)
    assert_same_episodes(got, episodes)
    first = got[0]
    assert first.observations.dtype == np.float32 and first.observations.shape == (first.length + 1, OBS_DIM)
    assert first.actions.dtype == np.float32 and first.actions.shape == (first.length, ACT_DIM)
    assert first.rewards.dtype == np.float64
    assert first.terminations.dtype == np.bool_ and first.truncations.dtype == np.bool_
    assert first.infos["success"].dtype == np.bool_
    assert first.total_return == pytest.approx(float(episodes[0].rewards.sum()))

    assert metadata["dataset_id"] == "pdiff/cheetah-vel/task-07/expert-v0"
    assert metadata["total_episodes"] == 6
    assert metadata["total_steps"] == sum(ep.length for ep in episodes)
    assert metadata["data_format"] == "hdf5" and metadata["jpeg_encoding"] is False
    assert metadata["minari_version"] == "0.5.4"
    assert isinstance(metadata["dataset_size"], float)
    # Minari stores spaces as JSON strings inside the JSON.
    obs_space = json.loads(metadata["observation_space"])
    assert obs_space["type"] == "Box" and obs_space["shape"] == [OBS_DIM] and obs_space["dtype"] == "float32"
    assert obs_space["low"][0] == -np.inf
    assert json.loads(metadata["action_space"])["high"] == [1.0] * ACT_DIM
    assert metadata["algorithm_name"] == "random-test" and metadata["description"] == "test data"
    assert metadata["code_permalink"] == "abc123" and metadata["author"] == ["pdiff tests"]
    assert metadata["requirements"] == ["mujoco==3.3.0"]
    assert (metadata["ref_min_score"], metadata["ref_max_score"]) == (-300.0, -20.0)
    block = metadata["pdiff"]
    assert (
        block["family"] == FAMILY and block["task_id"] == 7 and block["schema_version"] == mf.SCHEMA_VERSION
    )
    assert block["content_sha256"] == mf.content_sha256(episodes)
    assert block["file_sha256"] == sha256_file(directory / "data" / mf.MAIN_FILE)
    assert mr.read_metadata(directory) == metadata
    assert mr.verify_dataset(directory) == []


def test_episode_groups_carry_minaris_attributes(datasets_root):
    episodes = random_episodes(1, 3)
    directory = write(datasets_root, FAMILY, 0, "expert", episodes)
    with h5py.File(directory / "data" / mf.MAIN_FILE, "r") as file:
        assert list(file) == ["episode_0", "episode_1", "episode_2"]
        attrs = dict(file["episode_1"].attrs)
        data = file["episode_1/observations"]
        assert data.chunks is not None and data.maxshape == (None, OBS_DIM) and data.compression is None
    rewards = episodes[1].rewards
    assert attrs["id"] == 1 and attrs["seed"] == episodes[1].seed and attrs["total_steps"] == len(rewards)
    assert attrs["rewards_sum"] == pytest.approx(rewards.sum())
    assert attrs["rewards_mean"] == pytest.approx(rewards.mean())
    assert attrs["rewards_std"] == pytest.approx(rewards.std())
    assert (attrs["rewards_min"], attrs["rewards_max"]) == (rewards.min(), rewards.max())


def test_same_episodes_give_byte_identical_files_even_seconds_apart(tmp_path):
    episodes = random_episodes(2, 4)
    first = write(tmp_path / "a", FAMILY, 1, "expert", episodes)
    time.sleep(1.1)  # any timestamp stored in the file would now differ
    second = write(tmp_path / "b", FAMILY, 1, "expert", episodes)
    assert sha256_file(first / "data" / mf.MAIN_FILE) == sha256_file(second / "data" / mf.MAIN_FILE)
    assert mr.read_metadata(first)["pdiff"] == mr.read_metadata(second)["pdiff"]

    changed = random_episodes(2, 4)
    changed[3].rewards[-1] += 1e-9
    assert mf.content_sha256(changed) != mf.content_sha256(episodes)
    changed[3].rewards[-1] -= 1e-9
    changed[0].seed = 99
    assert mf.content_sha256(changed) != mf.content_sha256(episodes)


def test_an_existing_dataset_is_never_overwritten(datasets_root):
    directory = write(datasets_root, FAMILY, 2, "expert", random_episodes(3, 2))
    before = sha256_file(directory / "data" / mf.MAIN_FILE)
    with pytest.raises(ArtifactError, match="already exists"):
        write(datasets_root, FAMILY, 2, "expert", random_episodes(4, 2))
    assert sha256_file(directory / "data" / mf.MAIN_FILE) == before
    assert sorted(p.name for p in directory.parent.iterdir()) == ["expert-v0", mf.NAMESPACE_METADATA_FILE]


def test_versions_count_per_kind_and_ignore_temporary_directories(datasets_root):
    assert mf.latest_version(datasets_root, FAMILY, 3, "expert") is None
    assert mf.next_version(datasets_root, FAMILY, 3, "expert") == 0
    write(datasets_root, FAMILY, 3, "expert", random_episodes(5, 1), version=0)
    write(datasets_root, FAMILY, 3, "expert", random_episodes(5, 1), version=2)
    write(datasets_root, FAMILY, 3, "prompt-expert", random_episodes(5, 1), version=7)
    (datasets_root / "pdiff/cheetah-vel/task-03/.expert-v9.tmp-123/data").mkdir(parents=True)
    assert mf.latest_version(datasets_root, FAMILY, 3, "expert") == 2
    assert mf.next_version(datasets_root, FAMILY, 3, "expert") == 3
    assert mf.latest_version(datasets_root, FAMILY, 3, "prompt-expert") == 7
    assert mf.latest_version(datasets_root, FAMILY, 4, "expert") is None


def test_writer_rejects_malformed_episodes(datasets_root):
    good = random_episodes(6, 1)[0]
    cases = {
        "observations": good.observations[:-1],  # missing the initial observation
        "actions": good.actions[:, :3],
        "rewards": good.rewards[:, None],
    }
    for name, bad in cases.items():
        episode = random_episodes(6, 1)[0]
        setattr(episode, name, bad)
        with pytest.raises(ValueError, match=name):
            write(datasets_root, FAMILY, 4, "expert", [episode])
    episode = random_episodes(6, 1)[0]
    episode.rewards[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write(datasets_root, FAMILY, 4, "expert", [episode])
    with pytest.raises(ValueError, match="no episodes"):
        write(datasets_root, FAMILY, 4, "expert", [])
    assert not (datasets_root / "pdiff/cheetah-vel/task-04/expert-v0").exists()


def test_namespace_metadata_is_written_where_minari_looks(datasets_root):
    mf.write_namespace_metadata(
        datasets_root, FAMILY, {"tasks": [0, 1], "split": {"train": [0], "test": [1]}}
    )
    write(datasets_root, FAMILY, 1, "expert", random_episodes(7, 1))
    family_file = datasets_root / "pdiff" / FAMILY / mf.NAMESPACE_METADATA_FILE
    assert json.loads(family_file.read_text())["split"] == {"train": [0], "test": [1]}  # not overwritten
    assert json.loads((datasets_root / "pdiff" / mf.NAMESPACE_METADATA_FILE).read_text()) == {}
    assert (
        json.loads((datasets_root / "pdiff/cheetah-vel/task-01" / mf.NAMESPACE_METADATA_FILE).read_text())
        == {}
    )


# ---- damage: each case must fail loudly, naming the file, and verify_dataset must report it


def _cut_in_half(directory: Path) -> Path:
    path = directory / "data" / mf.MAIN_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _flip_array_byte(directory: Path) -> Path:
    path = directory / "data" / mf.MAIN_FILE
    with h5py.File(path, "r") as file:
        data = file["episode_1/observations"]
        chunk = data.id.get_chunk_info(0)  # chunked like Minari's: the first chunk's bytes in the file
        middle = chunk.byte_offset + chunk.size // 2
    raw = bytearray(path.read_bytes())
    raw[middle] ^= 0x40
    path.write_bytes(bytes(raw))
    return path


def _delete_metadata(directory: Path) -> Path:
    path = directory / "data" / mf.METADATA_FILE
    path.unlink()
    return path


def _garbage_file(directory: Path) -> Path:
    path = directory / "data" / mf.MAIN_FILE
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _delete_main_file(directory: Path) -> Path:
    path = directory / "data" / mf.MAIN_FILE
    path.unlink()
    return path


def _drop_metadata_key(directory: Path) -> Path:
    path = directory / "data" / mf.METADATA_FILE
    metadata = json.loads(path.read_text())
    del metadata["total_steps"]
    path.write_text(json.dumps(metadata))
    return path


def _future_schema(directory: Path) -> Path:
    path = directory / "data" / mf.METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["pdiff"]["schema_version"] = 99
    path.write_text(json.dumps(metadata))
    return path


def _remove_directory(directory: Path) -> Path:
    for path in sorted(directory.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    directory.rmdir()
    return directory


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_cut_in_half, "truncated"),
        (_flip_array_byte, "content sha256 mismatch"),
        (_delete_metadata, "file not found"),
        (_garbage_file, "unreadable"),
        (_delete_main_file, "file not found"),
        (_drop_metadata_key, "missing key.*total_steps"),
        (_future_schema, "unsupported schema_version 99"),
        (_remove_directory, "directory not found"),
    ],
)
def test_damaged_datasets_fail_with_the_file_named(datasets_root, damage, expected):
    directory = write(datasets_root, FAMILY, 5, "expert", random_episodes(8, 4, min_len=50, max_len=60))
    path = damage(directory)
    with pytest.raises(ArtifactError, match=expected) as caught:
        mr.read_dataset(directory)
    error = caught.value
    assert str(path) in error.message and "\n" not in error.message
    if damage is not _future_schema:
        assert "damaged" in error.hint and f"pdiff collect --env {FAMILY}" in error.hint
    problems = mr.verify_dataset(directory)
    assert problems and all(str(path) in p for p in problems)


def test_a_flipped_array_byte_shows_in_both_hashes_and_reads_without_verify(datasets_root):
    directory = write(datasets_root, FAMILY, 6, "expert", random_episodes(9, 3, min_len=40, max_len=50))
    _flip_array_byte(directory)
    problems = mr.verify_dataset(directory)
    assert len(problems) == 2 and "content sha256" in problems[0] and "file sha256" in problems[1]
    episodes, _ = mr.read_dataset(directory, verify=False)  # readable, just not what was written
    assert not np.array_equal(
        episodes[1].observations, random_episodes(9, 3, min_len=40, max_len=50)[1].observations
    )


def test_write_leaves_no_temporary_directory(datasets_root):
    directory = write(datasets_root, FAMILY, 8, "expert", random_episodes(10, 1))
    leftovers = [p.name for p in directory.parent.iterdir() if ".tmp-" in p.name]
    assert leftovers == [] and not any(str(os.getpid()) in p.name for p in directory.parent.iterdir())
