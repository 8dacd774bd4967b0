"""The denoiser's exponential moving average: its update rule and its place in checkpoints."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from pdiff.training.state import EMA, CheckpointStore


def test_ema_update_is_the_moving_average() -> None:
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1000)  # past the warm-up: the decay itself
    assert torch.allclose(ema.module.weight, start + 0.1)
    ema.update(model, step=0)  # the warm-up's first step: d = 1/10
    assert torch.allclose(ema.module.weight, start + 0.1 + 0.9 * 0.9)
    assert not ema.module.weight.requires_grad


def test_checkpoint_keeps_averaged_weights_for_inference_and_trained_ones_for_resume(tmp_path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.mul_(3.0)
    ema.update(model, step=100)
    store = CheckpointStore(tmp_path / "checkpoints")
    saved = store.save(1, model, {"model": "Linear"}, optimizer, None, np.random.default_rng(0), ema=ema)
    assert torch.equal(load_file(str(saved / "model.safetensors"))["weight"], ema.module.weight)
    restored, restored_ema = torch.nn.Linear(3, 2), EMA(torch.nn.Linear(3, 2), decay=0.5)
    step = store.restore(
        restored, torch.optim.Adam(restored.parameters()), None, np.random.default_rng(1), ema=restored_ema
    )
    assert step == 1
    assert torch.equal(restored.weight, model.weight)
    assert torch.equal(restored_ema.module.weight, ema.module.weight)
    assert not torch.equal(restored.weight, restored_ema.module.weight)
