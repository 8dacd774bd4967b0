"""The tensors of a run's checkpoint, for comparing two runs bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file


def latest_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model tensors of the run's latest checkpoint (checkpoints/latest.json)."""
    name = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["dir"]
    return load_file(str(run_dir / "checkpoints" / name / "model.safetensors"))


def assert_same_weights(
    got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], *, rtol: float = 0.0, atol: float = 0.0
) -> None:
    """Same tensor names; every tensor equal (bit for bit unless a tolerance is given)."""
    assert got.keys() == expected.keys()
    for key, tensor in expected.items():
        if rtol == atol == 0.0:
            assert torch.equal(got[key], tensor), f"{key} differs"
        else:
            np.testing.assert_allclose(got[key].numpy(), tensor.numpy(), rtol=rtol, atol=atol, err_msg=key)
