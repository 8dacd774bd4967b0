"""What an eval writes of its episodes: `episodes.csv`, one row per episode (the report and `verify` read it),
and GIFs of the episodes that recorded frames."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pdiff.rollouts.rollout import EpisodeResult
from pdiff.workspace.atomic import atomic_write_bytes, atomic_write_text

EPISODE_COLUMNS = ["seed", "task", "episode", "reset_seed", "return", "length", "success"]


def write_episodes(out: Path, episodes: list[EpisodeResult], seed_of: list[int]) -> Path:
    """`out/episodes.csv`: each episode with the seed it ran under (`seed_of`, in the same order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EPISODE_COLUMNS)
    for e, seed in zip(episodes, seed_of, strict=True):
        success = "" if e.success is None else int(e.success)
        writer.writerow([seed, e.task, e.episode, e.seed, f"{e.episode_return:.6f}", e.length, success])
    path = out / "episodes.csv"
    atomic_write_text(path, buffer.getvalue())
    return path


def write_videos(out: Path, episodes: list[EpisodeResult]) -> list[Path]:
    """A GIF per episode that recorded frames (every second frame, 20 fps), under `out`."""
    import imageio.v2 as imageio

    paths = []
    for e in episodes:
        if e.frames:
            gif = io.BytesIO()
            imageio.mimsave(gif, e.frames[::2], format="GIF", duration=50, loop=0)
            path = out / f"task-{e.task:02d}-episode-{e.episode}.gif"
            atomic_write_bytes(path, gif.getvalue())
            paths.append(path)
    return paths
