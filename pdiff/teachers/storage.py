"""What a teacher run keeps on disk: the replay buffer, resumable checkpoints, snapshots and metrics.

A checkpoint directory is written under a temporary name, moved into place, and only then named in
`checkpoints/latest.json`, so a run killed at any point resumes from the last complete checkpoint.
`train_state.pt` holds only tensors and plain containers and is read with `weights_only=True`; numpy arrays
(replay buffer, per-env episode state) go to `replay.npz`, read with `allow_pickle=False`.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pdiff import plots
from pdiff.envs import TaskFamily
from pdiff.errors import ArtifactError
from pdiff.teachers.policy import save_policy
from pdiff.teachers.sac import SAC, SACConfig
from pdiff.workspace.atomic import atomic_replace_dir, atomic_write_bytes, atomic_write_json, remove_tree

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions (teacher inputs, i.e. observation ‖ task condition)."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated")

    def __init__(self, capacity: int, input_dim: int, act_dim: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, input_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, input_dim), dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.position = 0
        self.size = 0

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        for row in range(len(obs)):
            i = self.position
            self.obs[i], self.actions[i], self.rewards[i] = obs[row], actions[row], rewards[row]
            self.next_obs[i], self.terminated[i] = next_obs[row], terminated[row]
            self.position = (i + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, ...]:
        index = rng.integers(0, self.size, size=batch_size)
        return tuple(torch.from_numpy(getattr(self, name)[index]) for name in self.FIELDS)

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"buffer_{name}": getattr(self, name)[: self.size] for name in self.FIELDS}
        return {**arrays, "buffer_position": np.array(self.position)}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.size = len(arrays["buffer_obs"])
        if self.size > self.capacity:
            raise ArtifactError(f"replay buffer of {self.size} exceeds capacity {self.capacity}")
        for name in self.FIELDS:
            getattr(self, name)[: self.size] = arrays[f"buffer_{name}"]
        self.position = int(arrays["buffer_position"])


@dataclass
class SnapshotInfo:
    update: int
    mean_return: float
    path: Path


def list_snapshots(out_dir: str | Path) -> list[SnapshotInfo]:
    """Every finished snapshot of a teacher run, oldest first."""
    snapshots = []
    for path in sorted(Path(out_dir, "snapshots").glob("[0-9]" * 8)):
        evaluation = json.loads((path / "eval.json").read_text())
        snapshots.append(SnapshotInfo(evaluation["update"], evaluation["mean_return"], path))
    return snapshots


def nearest_snapshot(out_dir: str | Path, target_return: float) -> SnapshotInfo:
    """The snapshot whose mean return is closest to `target_return` (e.g. half the expert's, for medium)."""
    snapshots = list_snapshots(out_dir)
    if not snapshots:
        raise ArtifactError(
            f"no teacher snapshots in {out_dir}", hint="train the teacher first (pdiff collect)"
        )
    return min(snapshots, key=lambda s: (abs(s.mean_return - target_return), s.update))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The directory named by `checkpoints/latest.json`, or None when the run has no checkpoint yet."""
    latest = Path(out_dir, CHECKPOINTS, LATEST)
    if not latest.is_file():
        return None
    try:
        path = latest.parent / json.loads(latest.read_text())["dir"]
    except (ValueError, KeyError) as error:
        raise ArtifactError(
            f"{latest} is unreadable: {error}", hint="delete the run directory and retrain"
        ) from error
    if not path.is_dir():
        raise ArtifactError(f"{latest} names a missing checkpoint {path.name}", hint="retrain the teacher")
    return path


def write_checkpoint(
    out_dir: Path,
    update: int,
    *,
    agent: SAC,
    family: TaskFamily,
    config: SACConfig,
    policy_meta: dict,
    buffer: ReplayBuffer,
    rng: np.random.Generator,
    slots: dict[str, np.ndarray],
    counters: dict,
    progress: dict,
    last_eval: dict | None,
) -> Path:
    """Write checkpoint `update` and make it the latest. Inference files are those of a snapshot."""
    root = out_dir / CHECKPOINTS
    final, tmp = root / f"{update:08d}", root / f".tmp-{update:08d}"
    remove_tree(tmp)
    remove_tree(final)  # left by an interrupted run after the checkpoint it was resumed from
    save_policy(tmp, agent.actor, family, config, policy_meta)
    train_state = {
        **agent.train_state(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state,
        "family": family.name,
        "config": config.model_dump(mode="json"),
        "counters": counters,
        "progress": progress,
        "last_eval": last_eval,
    }
    state_bytes = io.BytesIO()
    torch.save(train_state, state_bytes)
    atomic_write_bytes(tmp / "train_state.pt", state_bytes.getvalue())
    arrays = io.BytesIO()
    np.savez(arrays, **buffer.arrays(), **{f"slot_{key}": value for key, value in slots.items()})
    atomic_write_bytes(tmp / "replay.npz", arrays.getvalue())
    atomic_replace_dir(tmp, final)
    atomic_write_json(root / LATEST, {"update": update, "dir": final.name})
    return final


def load_checkpoint(path: Path, *, agent: SAC, buffer: ReplayBuffer, rng: np.random.Generator) -> dict:
    """Restore `agent`, `buffer`, `rng` and torch's RNG from checkpoint `path`; return the rest of the state
    (config, family, counters, progress, last_eval and the per-env `slots` arrays)."""
    try:
        state = torch.load(path / "train_state.pt", weights_only=True)
        with np.load(path / "replay.npz", allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        agent.load_train_state(state)
    except (OSError, RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ArtifactError(
            f"checkpoint {path} cannot be read: {error}",
            hint="delete it and point checkpoints/latest.json at an older one, or retrain",
        ) from error
    buffer.load_arrays(arrays)
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    state["slots"] = {
        key.removeprefix("slot_"): value for key, value in arrays.items() if key.startswith("slot_")
    }
    return state


def prune_checkpoints(out_dir: Path, *, keep: int) -> None:
    """Delete all but the `keep` newest checkpoints (each holds a full replay buffer)."""
    checkpoints = sorted(Path(out_dir, CHECKPOINTS).glob("[0-9]" * 8))
    for path in checkpoints[:-keep]:
        remove_tree(path)


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The records of the teacher's `metrics.jsonl`; a torn last line (a run killed mid-write) is skipped."""
    return plots.read_metrics(Path(out_dir, "metrics.jsonl"))
