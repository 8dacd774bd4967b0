"""The segments Prompt Diffuser trains on sit where the Prompt-DT reads its prompt: episode tails."""

from __future__ import annotations

import numpy as np
from dataset_factory import OBS_DIM, random_episodes

from pdiff.data.batches import PromptBank, SegmentSampler
from pdiff.data.loader import load_family_data
from pdiff.methods.prompt_diffuser import prompt_segments

FAMILY, LENGTH = "cheetah-vel", 5


def test_tail_segments_are_steps_T6_to_T2_and_anywhere_ones_are_not(writer, datasets_root) -> None:
    for task in (0, 1):
        writer(FAMILY, task, "expert", random_episodes(task, 6, min_len=12, max_len=40))
    data = load_family_data(datasets_root, FAMILY, "expert", [0, 1])
    norm = {
        "rtg_scale": 10.0,
        "state_mean": np.zeros(OBS_DIM, np.float32),
        "state_std": np.ones(OBS_DIM, np.float32),
    }
    sampler, tails = SegmentSampler(data, context_len=8, **norm), PromptBank(data, prompt_len=LENGTH, **norm)
    rows = np.array([0, 1] * 32)
    rng = np.random.default_rng(0)
    tail = prompt_segments("tail", sampler, tails, rng, rows, LENGTH)
    ends = {int(length) for length in data.episode_lengths}
    for timesteps, task in zip(tail.timesteps, tail.tasks, strict=True):
        assert int(timesteps[-1]) + 2 in ends and np.array_equal(np.diff(timesteps), np.ones(LENGTH - 1))
        assert task in (0, 1)
    assert np.array_equal(tail.tasks, rows) and tail.mask.all()
    # each tail's last step is T-2 of its own episode: its RTG is that episode's last two rewards
    last_two = {
        round(float(data.rewards[s + n - 2 : s + n].sum()) / 10.0, 4)
        for s, n in zip(data.episode_starts, data.episode_lengths, strict=True)
    }
    assert {round(float(r), 4) for r in tail.returns_to_go[:, -1, 0]} <= last_two
    anywhere = prompt_segments("anywhere", sampler, tails, rng, rows, LENGTH)
    assert anywhere.mask.all() and (anywhere.timesteps[:, -1] + 2 < 12).any()  # windows far from the end
