"""episodes.csv and the GIFs an eval writes (pdiff.rollouts.episode_files)."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from pdiff.rollouts.episode_files import EPISODE_COLUMNS, write_episodes, write_videos
from pdiff.rollouts.rollout import EpisodeResult


def test_episodes_csv_has_one_row_per_episode_with_its_seed(tmp_path):
    episodes = [EpisodeResult(11, 0, 7, 12.3456789, 20, True), EpisodeResult(17, 1, 8, -1.5, 19, None)]
    path = write_episodes(tmp_path / "eval", episodes, [0, 3])
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == EPISODE_COLUMNS
    assert rows == [
        dict(zip(EPISODE_COLUMNS, ["0", "11", "0", "7", "12.345679", "20", "1"], strict=True)),
        dict(zip(EPISODE_COLUMNS, ["3", "17", "1", "8", "-1.500000", "19", ""], strict=True)),
    ]


def test_a_gif_per_episode_that_recorded_frames(tmp_path):
    frames = [np.full((8, 8, 3), value, dtype=np.uint8) for value in range(0, 250, 50)]
    recorded = EpisodeResult(25, 2, 0, 0.0, 5, None, frames=frames)
    paths = write_videos(tmp_path, [recorded, EpisodeResult(25, 3, 0, 0.0, 5, None)])
    assert [p.name for p in paths] == ["task-25-episode-2.gif"]
    assert Image.open(paths[0]).n_frames == 3  # every second frame
