"""Pieces every training loop shares: seeding and a checkpoint directory with resume.

`checkpoints/<step:07d>/` holds what inference needs (model.safetensors, model_config.json) and, apart,
what resuming needs (train_state.pt: step, optimiser, scheduler, RNG states); `latest.json` points at the
newest complete one. A checkpoint directory is written under a temporary name and renamed into place, with
`sha256.json` (the hash of every file in it) checked before a resume uses it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdiff.errors import ArtifactError, RunFailed
from pdiff.models.checkpoint import (
    capture_rng,
    load_train_state,
    restore_rng,
    save_inference,
    save_train_state,
)
from pdiff.workspace.atomic import atomic_replace_dir, atomic_write_json, sha256_file

LATEST = "latest.json"
CHECKSUMS = "sha256.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def check_finite(
    stage: str,
    step: int,
    losses: dict[str, float | None],
    store: CheckpointStore | None = None,
    *,
    where: str = "",
) -> None:
    """Stop a run whose loss became NaN or inf, naming the step and the checkpoint that is still good.

    Call it before any checkpoint of `step` is written: the newest checkpoint on disk then predates the
    bad step. None (a loss this configuration does not compute) is skipped; `where` adds context such as
    "seed 0, task 11".
    """
    bad = {name: value for name, value in losses.items() if value is not None and not math.isfinite(value)}
    if not bad:
        return
    values = ", ".join(f"{name} {value}" for name, value in bad.items())
    last = store.latest() if store is not None else None
    kept = f"last good checkpoint: {last}" if last is not None else "no checkpoint of it was written"
    at = f"step {step}" + (f" ({where})" if where else "")
    raise RunFailed(
        f"{stage} loss became non-finite at {at}: {values}; {kept}",
        hint=f"start a new `pdiff {stage}` with a lower learning rate (--set lr=...), "
        "or check the data with `pdiff verify`",
    )


class EMA(torch.nn.Module):
    """An exponential moving average of a model's weights: after optimiser step n, w̄ ← d·w̄ + (1 − d)·w with
    d = min(decay, (1 + n)/(10 + n)), the usual warm-up, so that early steps do not keep the random init."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        averaged, trained = list(self.module.parameters()), list(model.parameters())
        torch._foreach_lerp_(averaged, trained, 1.0 - decay)


class CheckpointStore:
    def __init__(self, root: Path, *, keep: int = 2) -> None:
        self.root = root
        self.keep = keep
        self.restored_extra: dict[str, Any] = {}  # the `extra` of the checkpoint `restore` loaded

    def latest(self) -> Path | None:
        """The newest complete checkpoint: the one latest.json names, else the newest step directory.

        Step directories only appear by an atomic rename, so each is complete; latest.json may lag one
        behind (a kill between the rename and its update) or name a directory the user deleted.
        """
        pointer = self.root / LATEST
        if pointer.is_file():
            try:
                name = json.loads(pointer.read_text())["dir"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ArtifactError(
                    f"{pointer} is corrupt", hint="delete it: the newest checkpoint directory is used instead"
                ) from exc
            if (self.root / str(name)).is_dir():
                return self.root / str(name)
        steps = self._step_dirs()
        return steps[-1] if steps else None

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
        ema: EMA | None = None,
    ) -> Path:
        name = f"{step:07d}"
        final = self.root / name
        if final.exists():  # a resumed run re-reaching a saved step: the saved one is identical
            return final
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        # With an EMA the inference files hold the averaged weights (what later stages use), and the trained
        # weights go to the resume state.
        save_inference(
            tmp, ema.module if ema is not None else model, model_config, metadata={"step": str(step)}
        )
        state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "numpy_rng": rng.bit_generator.state,
            "rng": capture_rng(),
            "extra": extra or {},
        }
        if ema is not None:
            state["trained_weights"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_train_state(tmp / "train_state.pt", state)
        checksums = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        atomic_write_json(tmp / CHECKSUMS, checksums)
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
        ema: EMA | None = None,
    ) -> int:
        """Load the newest checkpoint into the given objects (and `ema`, if saved with one); returns its
        step."""
        from safetensors.torch import load_file

        latest = self.latest()
        if latest is None:
            return 0
        self.verify(latest)
        try:
            weights = load_file(str(latest / "model.safetensors"))
        except Exception as exc:  # noqa: BLE001 - any safetensors failure means a damaged file
            raise ArtifactError(
                f"{latest / 'model.safetensors'} is unreadable ({exc})",
                hint="delete that checkpoint directory and resume again",
            ) from exc
        state = load_train_state(latest / "train_state.pt")
        model.load_state_dict(state.get("trained_weights", weights))
        if ema is not None:
            ema.module.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        restore_rng(state["rng"])
        self.restored_extra = dict(state.get("extra") or {})
        return int(state["step"])

    def verify(self, directory: Path) -> None:
        """Check every file of a checkpoint against its sha256.json (older checkpoints have none)."""
        manifest = directory / CHECKSUMS
        if not manifest.is_file():
            return
        hint = f"delete {directory}; `--resume` then continues from the checkpoint before it"
        try:
            checksums = json.loads(manifest.read_text())
            assert isinstance(checksums, dict)
        except (OSError, ValueError, AssertionError):
            raise ArtifactError(f"{manifest} is corrupt", hint=hint) from None
        for name, recorded in checksums.items():
            path = directory / name
            if not path.is_file():
                raise ArtifactError(f"{path} is missing", hint=hint)
            if sha256_file(path) != recorded:
                raise ArtifactError(f"{path} does not match its sha256 (corrupt or truncated)", hint=hint)

    def _step_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())

    def _prune(self) -> None:
        for old in self._step_dirs()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
