"""Training batches for Prompt-DT, gathered with vectorised indexing (no per-item Python loops).

A *segment* is K consecutive steps of one episode (Prompt-DT's `get_batch`): the episode is drawn with
probability proportional to its length, the start uniformly, and a segment that runs past the episode end
is left-padded (mask 0). A *prompt* is the tail of a prompt-expert episode (steps T−6 … T−2 for H = 5,
Prompt-DT's `get_prompt`), precomputed once per prompt episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pdiff.data.loader import FamilyData
from pdiff.models.prompt_dt import Prompt


@dataclass(frozen=True)
class Segments:
    """A batch of fixed-length steps, normalised (states) and scaled (returns-to-go), padding on the left."""

    states: np.ndarray  # (B, L, d_s) float32
    actions: np.ndarray  # (B, L, d_a) float32
    rewards: np.ndarray  # (B, L) float32, raw
    returns_to_go: np.ndarray  # (B, L, 1) float32, divided by the family's RTG scale
    timesteps: np.ndarray  # (B, L) int64
    mask: np.ndarray  # (B, L) float32, 1 = real step
    tasks: np.ndarray  # (B,) int64

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    def to_torch(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        return {
            "states": torch.from_numpy(self.states).to(device),
            "actions": torch.from_numpy(self.actions).to(device),
            "returns_to_go": torch.from_numpy(self.returns_to_go).to(device),
            "timesteps": torch.from_numpy(self.timesteps).to(device),
            "mask": torch.from_numpy(self.mask).to(device),
        }

    def to_prompt(self, device: torch.device | str = "cpu") -> Prompt:
        """These segments as a Prompt-DT prompt (states normalised, returns-to-go scaled already)."""
        t = self.to_torch(device)
        return Prompt(t["states"], t["actions"], t["returns_to_go"], t["timesteps"], t["mask"])

    def take(self, rows: np.ndarray) -> Segments:
        return Segments(*(getattr(self, f)[rows] for f in Segments.__dataclass_fields__))


def concat_segments(parts: list[Segments]) -> Segments:
    return Segments(*(np.concatenate([getattr(p, f) for p in parts]) for f in Segments.__dataclass_fields__))


def gather_segments(
    data: FamilyData,
    episodes: np.ndarray,
    starts: np.ndarray,
    length: int,
    *,
    rtg_scale: float,
    state_mean: np.ndarray,
    state_std: np.ndarray,
    max_ep_len: int = 1000,
) -> Segments:
    """Steps `starts[b]` … of episode `episodes[b]`, at most `length` of them, left-padded to `length`."""
    offsets = data.episode_starts[episodes]
    lengths = data.episode_lengths[episodes]
    real = np.minimum(length, lengths - starts)  # steps available from the start
    column = np.arange(length)[None, :]
    mask = column >= (length - real)[:, None]
    index = offsets[:, None] + starts[:, None] + column - (length - real)[:, None]
    index = np.where(mask, index, offsets[:, None])  # any valid row; padded values are zeroed below
    states = (data.observations[index] - state_mean) / state_std
    keep = mask[..., None]
    return Segments(
        states=np.where(keep, states, 0.0).astype(np.float32),
        actions=np.where(keep, data.actions[index], 0.0).astype(np.float32),
        rewards=np.where(mask, data.rewards[index], 0.0).astype(np.float32),
        returns_to_go=np.where(keep, data.returns_to_go[index][..., None] / rtg_scale, 0.0).astype(
            np.float32
        ),
        timesteps=np.where(mask, np.minimum(data.timesteps[index], max_ep_len - 1), 0).astype(np.int64),
        mask=mask.astype(np.float32),
        tasks=data.episode_tasks[episodes].astype(np.int64),
    )


class SegmentSampler:
    """K-step training segments, `per_task` of them for each requested task."""

    def __init__(
        self,
        data: FamilyData,
        *,
        context_len: int,
        rtg_scale: float,
        state_mean: np.ndarray,
        state_std: np.ndarray,
        max_ep_len: int = 1000,
    ) -> None:
        self.data = data
        self.context_len = context_len
        self.norm = {
            "rtg_scale": rtg_scale,
            "state_mean": state_mean,
            "state_std": state_std,
            "max_ep_len": max_ep_len,
        }
        self._episodes = {t: data.task_episodes(t) for t in data.tasks()}
        self._weights = {
            t: data.episode_lengths[e] / data.episode_lengths[e].sum() for t, e in self._episodes.items()
        }

    def _episodes_for(self, rng: np.random.Generator, task_ids: Sequence[int], per_task: int) -> np.ndarray:
        return np.concatenate(
            [rng.choice(self._episodes[t], size=per_task, p=self._weights[t]) for t in task_ids]
        )

    def sample(self, rng: np.random.Generator, task_ids: Sequence[int], per_task: int) -> Segments:
        """Prompt-DT's segments: any start, so segments near an episode's end are left-padded."""
        episodes = self._episodes_for(rng, task_ids, per_task)
        starts = (rng.random(len(episodes)) * self.data.episode_lengths[episodes]).astype(np.int64)
        return gather_segments(self.data, episodes, starts, self.context_len, **self.norm)

    def sample_whole(
        self, rng: np.random.Generator, task_ids: Sequence[int], per_task: int, length: int
    ) -> Segments:
        """Segments of exactly `length` real steps (starts kept inside the episode), e.g. prompt-sized
        ones."""
        episodes = self._episodes_for(rng, task_ids, per_task)
        room = np.maximum(self.data.episode_lengths[episodes] - length, 0) + 1
        starts = (rng.random(len(episodes)) * room).astype(np.int64)
        return gather_segments(self.data, episodes, starts, length, **self.norm)


class PromptBank:
    """The tail prompt of every prompt-expert episode, computed once; sampled per task."""

    def __init__(
        self,
        data: FamilyData,
        *,
        prompt_len: int,
        rtg_scale: float,
        state_mean: np.ndarray,
        state_std: np.ndarray,
        max_ep_len: int = 1000,
    ) -> None:
        episodes = np.arange(data.num_episodes)
        starts = np.maximum(0, data.episode_lengths - prompt_len - 1)
        norm = {
            "rtg_scale": rtg_scale,
            "state_mean": state_mean,
            "state_std": state_std,
            "max_ep_len": max_ep_len,
        }
        self.prompts = gather_segments(data, episodes, starts, prompt_len, **norm)
        self._by_task = {t: data.task_episodes(t) for t in data.tasks()}

    def tasks(self) -> list[int]:
        return sorted(self._by_task)

    def sample(self, rng: np.random.Generator, tasks: np.ndarray) -> Segments:
        """One random prompt of each row's own task (every batch row gets a fresh prompt, as in Prompt-DT)."""
        rows = np.empty(len(tasks), dtype=np.int64)
        for task in np.unique(tasks):
            where = np.flatnonzero(tasks == task)
            rows[where] = rng.choice(self._by_task[int(task)], size=len(where))
        return self.prompts.take(rows)

    def all_for_task(self, task: int) -> Segments:
        """Every prompt of `task`, one per episode, in episode order."""
        return self.prompts.take(self._by_task[task])

    def for_task(self, task: int, rng: np.random.Generator) -> Segments:
        """One prompt of `task` (evaluation uses one prompt per task, reused for all its episodes)."""
        return self.prompts.take(np.array([rng.choice(self._by_task[task])]))
