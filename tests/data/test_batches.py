"""Training batches: the vectorised gather equals Prompt-DT's per-item construction."""

from __future__ import annotations

import numpy as np
from dataset_factory import OBS_DIM, random_episodes

from pdiff.data.batches import PromptBank, SegmentSampler, gather_segments
from pdiff.data.loader import load_family_data


def _reference_segment(episode, start, length, mean, std, scale):
    """Prompt-DT's get_batch for one item, written as a plain loop: slice, then left-pad."""
    steps = episode.length
    stop = min(start + length, steps)
    rewards = episode.rewards
    rtg = np.array([rewards[t:].sum() for t in range(start, stop)]) / scale
    real = stop - start
    pad = length - real
    states = np.zeros((length, OBS_DIM))
    states[pad:] = (episode.observations[start:stop] - mean) / std
    actions = np.zeros((length, episode.actions.shape[1]))
    actions[pad:] = episode.actions[start:stop]
    rtgs = np.zeros(length)
    rtgs[pad:] = rtg
    timesteps = np.zeros(length, dtype=np.int64)
    timesteps[pad:] = np.arange(start, stop)
    mask = np.zeros(length)
    mask[pad:] = 1
    return states, actions, rtgs, timesteps, mask


def test_gather_matches_the_per_item_reference(writer, datasets_root):
    episodes = random_episodes(0, 6, min_len=3, max_len=25)
    writer("fam", 0, "expert", episodes)
    data = load_family_data(datasets_root, "fam", "expert", [0])
    mean, std = data.state_stats([0])
    rng = np.random.default_rng(1)
    picks = rng.integers(0, 6, size=40)
    starts = np.array([rng.integers(0, episodes[e].length) for e in picks])
    batch = gather_segments(data, picks, starts, 20, rtg_scale=10.0, state_mean=mean, state_std=std)
    for row, (e, s) in enumerate(zip(picks, starts, strict=True)):
        states, actions, rtg, timesteps, mask = _reference_segment(episodes[e], s, 20, mean, std, 10.0)
        np.testing.assert_allclose(batch.states[row], states, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch.actions[row], actions, atol=1e-6)
        np.testing.assert_allclose(batch.returns_to_go[row, :, 0], rtg, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(batch.timesteps[row], timesteps)
        np.testing.assert_array_equal(batch.mask[row], mask)


def test_sampler_is_task_balanced_and_seeded(writer, datasets_root):
    for task in (0, 1, 2):
        writer("fam", task, "expert", random_episodes(task, 4))
    data = load_family_data(datasets_root, "fam", "expert", [0, 1, 2])
    mean, std = data.state_stats([0, 1])
    sampler = SegmentSampler(data, context_len=8, rtg_scale=1.0, state_mean=mean, state_std=std)
    first = sampler.sample(np.random.default_rng(3), [0, 2], per_task=5)
    again = sampler.sample(np.random.default_rng(3), [0, 2], per_task=5)
    assert list(first.tasks) == [0] * 5 + [2] * 5
    np.testing.assert_array_equal(first.states, again.states)
    assert first.states.shape == (10, 8, OBS_DIM) and first.mask[:, -1].all()  # the last step is always real


def test_prompt_bank_takes_each_episode_tail(writer, datasets_root):
    episodes = random_episodes(5, 3, min_len=8, max_len=12)
    writer("fam", 4, "prompt-expert", episodes)
    data = load_family_data(datasets_root, "fam", "prompt-expert", [4])
    zero, one = np.zeros(OBS_DIM, np.float32), np.ones(OBS_DIM, np.float32)
    bank = PromptBank(data, prompt_len=5, rtg_scale=1.0, state_mean=zero, state_std=one)
    for index, episode in enumerate(episodes):
        start = episode.length - 6  # steps T−6 … T−2, as Prompt-DT's get_prompt
        np.testing.assert_array_equal(bank.prompts.timesteps[index], np.arange(start, start + 5))
        np.testing.assert_allclose(bank.prompts.states[index], episode.observations[start : start + 5])
    drawn = bank.sample(np.random.default_rng(0), np.array([4, 4, 4]))
    assert drawn.mask.all() and drawn.tasks.tolist() == [4, 4, 4]
