"""prompts.h5 keeps what tune wrote, the mask included (a short few-shot episode's prompt is left-padded), and
several prompts per (seed, task); files of one prompt each, written before that, still read."""

from __future__ import annotations

import h5py
import numpy as np

from pdiff.data.batches import Segments, concat_segments
from pdiff.data.prompts_file import FIELDS, read_prompts, write_prompts


def _prompt(task: int, padded: int) -> Segments:
    rng = np.random.default_rng(task)
    mask = np.ones((1, 5), np.float32)
    mask[:, :padded] = 0.0
    return Segments(
        states=rng.normal(size=(1, 5, 3)).astype(np.float32),
        actions=rng.uniform(-1, 1, (1, 5, 2)).astype(np.float32),
        rewards=rng.normal(size=(1, 5)).astype(np.float32),
        returns_to_go=rng.normal(size=(1, 5, 1)).astype(np.float32),
        timesteps=np.arange(5)[None].astype(np.int64),
        mask=mask,
        tasks=np.array([task]),
    )


def test_prompts_round_trip_with_their_mask(tmp_path) -> None:
    written = {(0, 3): _prompt(3, padded=2), (1, 3): _prompt(4, padded=0)}
    write_prompts(tmp_path / "prompts.h5", written, {"method": "prompt-dt"})
    read, attrs = read_prompts(tmp_path / "prompts.h5")
    assert attrs == {"method": "prompt-dt"}
    for key, prompt in written.items():
        for name in FIELDS:
            assert np.array_equal(getattr(read[key], name), getattr(prompt, name)), name
    assert read[(0, 3)].mask.sum() == 3


def test_files_without_a_mask_read_as_fully_real(tmp_path) -> None:
    write_prompts(tmp_path / "prompts.h5", {(0, 3): _prompt(3, padded=0)}, {})
    with h5py.File(tmp_path / "prompts.h5", "a") as handle:
        del handle["seed-0/task-03/mask"]
    assert read_prompts(tmp_path / "prompts.h5")[0][(0, 3)].mask.tolist() == [[1.0] * 5]


def test_several_prompts_per_seed_and_task_round_trip(tmp_path) -> None:
    three = concat_segments([_prompt(3, padded=0), _prompt(4, padded=1), _prompt(5, padded=2)])
    three.tasks[:] = 3
    write_prompts(tmp_path / "prompts.h5", {(0, 3): three}, {})
    read = read_prompts(tmp_path / "prompts.h5")[0][(0, 3)]
    assert len(read) == 3 and read.tasks.tolist() == [3, 3, 3]
    assert np.array_equal(read.states, three.states) and read.mask.sum(axis=1).tolist() == [5, 4, 3]


def test_files_of_one_prompt_without_its_leading_axis_still_read(tmp_path) -> None:
    prompt = _prompt(3, padded=1)
    with h5py.File(tmp_path / "prompts.h5", "w") as handle:  # the layout before several prompts were stored
        group = handle.create_group("seed-0/task-03")
        for name in FIELDS:
            group.create_dataset(name, data=getattr(prompt, name)[0])
    read = read_prompts(tmp_path / "prompts.h5")[0][(0, 3)]
    assert len(read) == 1 and read.tasks.tolist() == [3]
    assert np.array_equal(read.states, prompt.states) and np.array_equal(read.mask, prompt.mask)
