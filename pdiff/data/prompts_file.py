"""Tuned prompts on disk: one HDF5 file per tune run, the prompts of every (seed, test task).

Layout: `seed-S/task-NN/{states, actions, rewards, returns_to_go, timesteps, mask}`, each holding P prompts
(P × steps × …): one per few-shot episode where a family's resets do not vary, else one. States are already in
the frozen Prompt-DT's normalised space and returns-to-go divided by the family's RTG scale (what the model
reads); root attrs name the method and the normalisation. Older files read as they were written: those from
before several prompts were stored hold one prompt without its leading axis, and those from before the mask
was stored read as fully real prompts (what those tune runs generated).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import h5py
import numpy as np

from pdiff.data.batches import Segments
from pdiff.errors import ArtifactError
from pdiff.workspace.atomic import atomic_write_bytes

FIELDS = ("states", "actions", "rewards", "returns_to_go", "timesteps", "mask")


def write_prompts(path: Path, prompts: dict[tuple[int, int], Segments], attrs: dict[str, str]) -> None:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", track_order=True) as handle:
        for key, value in attrs.items():
            handle.attrs[key] = value
        for (seed, task), segment in sorted(prompts.items()):
            group = handle.create_group(f"seed-{seed}/task-{task:02d}")
            for name in FIELDS:
                group.create_dataset(name, data=getattr(segment, name))
    atomic_write_bytes(path, buffer.getvalue())


def read_prompts(path: Path) -> tuple[dict[tuple[int, int], Segments], dict[str, str]]:
    if not os.path.isfile(path):
        raise ArtifactError(f"{path} is missing", hint="re-run `pdiff tune`")
    try:
        with h5py.File(path, "r") as handle:
            attrs = {k: str(v) for k, v in handle.attrs.items()}
            prompts = {}
            for seed_name, seed_group in handle.items():
                for task_name, group in seed_group.items():
                    one_prompt = group["timesteps"].ndim == 1  # written before several were stored
                    arrays = {
                        name: np.asarray(group[name])[None] if one_prompt else np.asarray(group[name])
                        for name in FIELDS
                        if name in group
                    }
                    arrays.setdefault("mask", np.ones(arrays["states"].shape[:2], np.float32))
                    task = int(task_name.split("-")[1])
                    tasks = np.full(len(arrays["states"]), task, np.int64)
                    prompts[(int(seed_name.split("-")[1]), task)] = Segments(tasks=tasks, **arrays)
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise ArtifactError(
            f"{path} is corrupt ({exc.__class__.__name__})", hint="re-run `pdiff tune`"
        ) from exc
    return prompts, attrs
