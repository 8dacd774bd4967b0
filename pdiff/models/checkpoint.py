"""Checkpoint files: inference weights apart from resume state (docs/workspace.md).

- `model.safetensors` + `model_config.json`: everything inference needs (weights; architecture, normalisation
  statistics, RTG scale, family), loadable without pickle.
- `train_state.pt`: optimiser, scheduler, RNG states and step, plain containers only, always loaded with
  `weights_only=True`.
Every file is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import random
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from pdiff.errors import ArtifactError
from pdiff.workspace.atomic import atomic_write_bytes, atomic_write_json

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"
SCHEMA_VERSION = "1"


def weights_sha256(module: nn.Module) -> str:
    """One hash of a module's weights (names and values): equal hashes, unchanged weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_inference(
    directory: Path, model: nn.Module, model_config: dict, *, metadata: dict[str, str] | None = None
) -> None:
    """Write `model.safetensors` (contiguous CPU copies of the weights) and `model_config.json`.

    `metadata` goes into the safetensors header (strings only), next to `pdiff_schema` and `model`.
    """
    header = {"pdiff_schema": SCHEMA_VERSION, "model": type(model).__name__, **(metadata or {})}
    bad = {k: type(v).__name__ for k, v in header.items() if not isinstance(v, str)}
    if bad:
        raise TypeError(f"safetensors metadata values must be str, got {bad}")
    # Clones: safetensors refuses tensors that share memory, and the file must not depend on the device.
    tensors = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in model.state_dict().items()}
    directory = Path(directory)
    atomic_write_json(directory / CONFIG_FILE, model_config)
    atomic_write_bytes(directory / WEIGHTS_FILE, save_safetensors_bytes(tensors, metadata=header))


def save_weights(module: nn.Module, path: Path) -> None:
    """The weights of `module` alone (contiguous CPU copies, no header), e.g. a denoiser prompt-diffuser
    tuned for one (seed, task)."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    atomic_write_bytes(path, save_safetensors_bytes(tensors))


def read_model_config(directory: Path) -> dict:
    """The `model_config.json` of a checkpoint directory, or ArtifactError."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", "point to a checkpoint directory written by pdiff")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(
            f"{path} is not valid JSON ({err})", "the checkpoint is corrupt; retrain or restore it"
        ) from err
    if not isinstance(config, dict):
        raise ArtifactError(
            f"{path} does not hold a JSON object", "the checkpoint is corrupt; retrain or restore it"
        )
    return config


def load_inference(
    directory: Path,
    build: Callable[[dict], nn.Module],
    *,
    expect: Mapping[str, Any] | None = None,
    expect_from: str = "the caller",
) -> tuple[nn.Module, dict]:
    """Build the model from `model_config.json` with `build`, load the weights, return (model in eval mode,
    config).

    `expect` maps dotted config keys to required values, checked before anything is built, e.g.
    `expect={"architecture.state_dim": 39}, expect_from="family metaworld-reach"` gives
    "checkpoint has state_dim 20, family metaworld-reach needs 39". Every failure is an ArtifactError.
    """
    directory = Path(directory)
    config = read_model_config(directory)
    config_path = directory / CONFIG_FILE
    for dotted, wanted in (expect or {}).items():
        found = _lookup(config, dotted)
        if found != wanted:
            key = dotted.rsplit(".", 1)[-1]
            raise ArtifactError(
                f"{config_path}: checkpoint has {key} {found}, {expect_from} needs {wanted}",
                "use a checkpoint trained for this family, or the family it was trained for",
            )
    try:
        model = build(config)
    except (KeyError, TypeError, ValueError) as err:
        raise ArtifactError(
            f"{config_path} does not describe a model this pdiff can build ({err})",
            "the checkpoint is corrupt or from an incompatible pdiff version",
        ) from err
    tensors = _read_weights(directory / WEIGHTS_FILE)
    _check_fits(directory / WEIGHTS_FILE, tensors, model.state_dict())
    model.load_state_dict(tensors)
    return model.eval(), config


def _lookup(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", "the checkpoint is incomplete; retrain or restore it")
    try:
        return load_safetensors_bytes(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as err:
        raise ArtifactError(
            f"{path} is corrupt or truncated ({err})", "the checkpoint is damaged; retrain or restore it"
        ) from err


def _check_fits(
    path: Path, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> None:
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ArtifactError(
            f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}",
            "the checkpoint was written by another model or pdiff version",
        )
    for name, want in expected.items():
        have = tensors[name]
        if have.shape != want.shape or have.dtype != want.dtype:
            raise ArtifactError(
                f"{path}: {name} has shape {tuple(have.shape)} {have.dtype}, "
                f"the model needs {tuple(want.shape)} {want.dtype}",
                "the weights do not fit model_config.json; the checkpoint is corrupt or mixed up",
            )


def save_train_state(path: Path, state: dict) -> None:
    """Resume state (optimizer/scheduler state dicts, `capture_rng()`, step): plain containers and tensors."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_train_state(path: Path) -> dict:
    """Load resume state without executing pickled code (weights_only=True), tensors on CPU."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", "resume from a checkpoint that has train_state.pt")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as err:
        raise ArtifactError(
            f"{path} is corrupt, truncated or holds more than plain data ({err})",
            "resume from an earlier checkpoint or start the run again",
        ) from err
    if not isinstance(state, dict):
        raise ArtifactError(f"{path} does not hold a dict", "resume from an earlier checkpoint")
    return state


def capture_rng(generator: np.random.Generator | None = None) -> dict:
    """RNG states of python `random`, the given numpy Generator, torch CPU and every CUDA device."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if generator is not None:
        state["numpy"] = generator.bit_generator.state
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: np.random.Generator | None = None) -> None:
    """Inverse of `capture_rng`; pass the same numpy Generator the state was captured from."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        if generator is None:
            raise ValueError(
                "the RNG state holds a numpy Generator state: pass the generator to restore it into"
            )
        generator.bit_generator.state = state["numpy"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
