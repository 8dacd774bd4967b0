"""Pieces every training loop shares: seeding and a checkpoint directory with resume.

`checkpoints/<step:07d>/` holds what inference needs (model.safetensors, model_config.json) and, apart,
what resuming needs (train_state.pt: step, optimiser, scheduler, RNG states); `latest.json` points at the
newest complete one. A checkpoint directory is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdiff.errors import ArtifactError
from pdiff.models.checkpoint import (
    capture_rng,
    load_train_state,
    restore_rng,
    save_inference,
    save_train_state,
)
from pdiff.workspace.atomic import atomic_replace_dir, atomic_write_json

LATEST = "latest.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class CheckpointStore:
    def __init__(self, root: Path, *, keep: int = 2) -> None:
        self.root = root
        self.keep = keep

    def latest(self) -> Path | None:
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        try:
            name = json.loads(pointer.read_text())["dir"]
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(
                f"{pointer} is corrupt", hint="delete it to fall back to an older checkpoint"
            ) from exc
        path = self.root / name
        if not path.is_dir():
            raise ArtifactError(
                f"{pointer} points at missing {path}", hint="delete latest.json and resume again"
            )
        return path

    def latest_step(self) -> int:
        latest = self.latest()
        return int(latest.name) if latest is not None else 0

    def latest_dir(self) -> str:
        latest = self.latest()
        if latest is None:
            raise ArtifactError(f"no checkpoint under {self.root}", hint="train first")
        return str(latest)

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        model_config: dict[str, Any],
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        rng: np.random.Generator,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        name = f"{step:07d}"
        final = self.root / name
        if final.exists():  # a resumed run re-reaching a saved step: the saved one is identical
            return final
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        save_inference(tmp, model, model_config, metadata={"step": str(step)})
        state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "numpy_rng": rng.bit_generator.state,
            "rng": capture_rng(),
            "extra": extra or {},
        }
        save_train_state(tmp / "train_state.pt", state)
        atomic_replace_dir(tmp, final)
        atomic_write_json(self.root / LATEST, {"step": step, "dir": name})
        self._prune()
        return final

    def restore(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        rng: np.random.Generator,
    ) -> int:
        """Load the newest checkpoint into the given objects; returns its step."""
        from safetensors.torch import load_file

        latest = self.latest()
        if latest is None:
            return 0
        try:
            weights = load_file(str(latest / "model.safetensors"))
        except Exception as exc:  # noqa: BLE001 - any safetensors failure means a damaged file
            raise ArtifactError(
                f"{latest / 'model.safetensors'} is unreadable ({exc})",
                hint="delete that checkpoint directory and resume again",
            ) from exc
        model.load_state_dict(weights)
        state = load_train_state(latest / "train_state.pt")
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        restore_rng(state["rng"])
        return int(state["step"])

    def _prune(self) -> None:
        steps = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())
        for old in steps[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
