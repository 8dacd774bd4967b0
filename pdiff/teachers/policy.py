"""A trained teacher's actor as inference files, and `TeacherPolicy`, which loads one and acts.

A policy directory (a checkpoint or a snapshot) holds `actor.safetensors` (the weights; its sha256 is the
policy's identity in dataset lineage), `policy.json` (family, dimensions, widths, update, seed) and
`config.json` (the SACConfig of the run).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from pdiff.envs import TaskFamily
from pdiff.errors import ArtifactError
from pdiff.teachers.sac import Actor, SACConfig
from pdiff.workspace.atomic import atomic_write_bytes, atomic_write_json, sha256_file

POLICY_FORMAT = "pdiff-sac-teacher"
POLICY_VERSION = 1
WEIGHTS_FILE = "actor.safetensors"
POLICY_FILE = "policy.json"


def save_policy(directory: Path, actor: Actor, family: TaskFamily, config: SACConfig, meta: dict) -> None:
    """Write the actor's inference files into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().contiguous() for name, tensor in actor.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, safetensors.torch.save(tensors))
    info = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "family": family.name,
        "obs_dim": family.obs_dim,
        "condition_dim": int(family.task_condition(0).shape[0]),
        "act_dim": family.act_dim,
        "hidden_sizes": list(config.hidden_sizes),
        **meta,
    }
    atomic_write_json(directory / POLICY_FILE, info)
    atomic_write_json(directory / "config.json", config.model_dump(mode="json"))


class TeacherPolicy:
    """The actor of a teacher checkpoint or snapshot, acting on batches of numpy observations."""

    def __init__(self, actor: Actor, info: dict, directory: Path, sha256: str) -> None:
        self.actor = actor.eval()
        self.info = info
        self.directory = directory
        self.sha256 = sha256
        self.family: str = info["family"]
        self.obs_dim: int = info["obs_dim"]
        self.condition_dim: int = info["condition_dim"]
        self.act_dim: int = info["act_dim"]

    @classmethod
    def load(cls, directory: str | Path) -> TeacherPolicy:
        directory = Path(directory)
        weights, info_path = directory / WEIGHTS_FILE, directory / POLICY_FILE
        if not weights.is_file() or not info_path.is_file():
            raise ArtifactError(
                f"{directory} is not a teacher checkpoint or snapshot (no {WEIGHTS_FILE} or {POLICY_FILE})",
                hint="point at checkpoints/<update> or snapshots/<update> of a teacher run",
            )
        try:
            info = json.loads(info_path.read_text())
            if info.get("format") != POLICY_FORMAT or info.get("version") != POLICY_VERSION:
                raise ValueError(f"format {info.get('format')!r} version {info.get('version')!r}")
            actor = Actor(
                info["obs_dim"] + info["condition_dim"], info["act_dim"], tuple(info["hidden_sizes"])
            )
            actor.load_state_dict(safetensors.torch.load_file(weights))
        except (ValueError, KeyError, RuntimeError, OSError, safetensors.SafetensorError) as error:
            raise ArtifactError(
                f"teacher policy in {directory} cannot be read: {error}",
                hint="the files are corrupt or from another version; retrain the teacher",
            ) from error
        return cls(actor, info, directory, sha256_file(weights))

    def check_family(self, family: TaskFamily) -> None:
        """ArtifactError unless this teacher was trained for `family`."""
        if self.family != family.name or self.obs_dim != family.obs_dim or self.act_dim != family.act_dim:
            raise ArtifactError(
                f"teacher in {self.directory} is for {self.family} ({self.obs_dim}/{self.act_dim} dims), "
                f"not {family.name} ({family.obs_dim}/{family.act_dim})",
                hint=f"use a teacher trained on {family.name}",
            )

    def act(
        self,
        obs: np.ndarray,
        task_condition: np.ndarray,
        *,
        deterministic: bool,
        noise_std: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Actions (n, act_dim) in [-1, 1] for observations (n, obs_dim) and task conditions (n, c).

        deterministic: tanh of the Gaussian mean; otherwise a sample of the squashed Gaussian drawn with
        `rng`. `noise_std` > 0 adds N(0, noise_std²) to the action (then clips), also drawn with `rng`.
        """
        obs, task_condition = np.asarray(obs, np.float32), np.asarray(task_condition, np.float32)
        if (
            obs.ndim != 2
            or obs.shape[1] != self.obs_dim
            or task_condition.shape != (len(obs), self.condition_dim)
        ):
            raise ArtifactError(
                f"teacher in {self.directory} expects observations (n, {self.obs_dim}) and conditions "
                f"(n, {self.condition_dim}), got {obs.shape} and {task_condition.shape}",
                hint=f"use a teacher trained on the family of these observations (this one is {self.family})",
            )
        if rng is None and (not deterministic or noise_std > 0):
            raise ValueError("a stochastic action or noise_std > 0 needs an rng")
        inputs = torch.from_numpy(np.concatenate((obs, task_condition), axis=1))
        with torch.no_grad():
            # The same float32 arithmetic as training (Actor.deterministic / Actor.sample), so a loaded
            # policy reproduces the returns its evaluation recorded.
            if deterministic:
                action = self.actor.deterministic(inputs)
            else:
                noise = torch.from_numpy(rng.standard_normal((len(obs), self.act_dim)).astype(np.float32))
                action = self.actor.sample(inputs, noise)[0]
        action = action.numpy()
        if noise_std > 0:
            action = np.clip(action + rng.normal(0.0, noise_std, size=action.shape), -1.0, 1.0)
        return action.astype(np.float32)
