"""Shared tester suite for pdiff models (d3rlpy style): call these from each model's tests.

Every model that pdiff checkpoints (Prompt-DT, the denoiser, adapted variants) should pass
`assert_save_load_identical` with its own builder and example inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from pdiff.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_inference, save_inference


def assert_outputs_equal(a: Any, b: Any) -> None:
    """Bitwise equality of tensors, or of tuples/lists/dicts of them."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), "outputs differ"
    elif isinstance(a, Mapping):
        assert a.keys() == b.keys()
        for key in a:
            assert_outputs_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_outputs_equal(x, y)
    else:
        assert a == b


def assert_save_load_identical(
    model: nn.Module,
    build: Callable[[dict], nn.Module],
    example_inputs: Mapping[str, Any],
    tmp_path: Path,
    *,
    model_config: dict,
) -> nn.Module:
    """save_inference -> load_inference gives the same weights, config and eval-mode outputs; returns the
    copy.

    `build(model_config)` must construct an untrained model of the same architecture;
    `example_inputs` are keyword arguments of `model(...)`.
    """
    model.eval()
    directory = tmp_path / "checkpoint"
    save_inference(directory, model, model_config, metadata={"step": "7"})
    assert (directory / WEIGHTS_FILE).is_file() and (directory / CONFIG_FILE).is_file()

    fresh = build(model_config)
    differs = any(not torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())
    assert differs, "build() gave the same weights as the model: the test could not tell a failed load"

    loaded, config = load_inference(directory, build)
    assert config == model_config
    assert not loaded.training, "load_inference must return the model in eval mode"
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys()
    for name, tensor in saved.items():
        assert torch.equal(tensor.cpu(), restored[name]), name
    with torch.no_grad():
        assert_outputs_equal(model(**example_inputs), loaded(**example_inputs))

    # The weights file stands alone: any safetensors reader gets the tensors and the header metadata.
    with safe_open(directory / WEIGHTS_FILE, framework="pt") as handle:
        metadata = handle.metadata()
        assert set(handle.keys()) == set(saved)
    assert metadata["pdiff_schema"] == "1"
    assert metadata["model"] == type(model).__name__
    assert metadata["step"] == "7"
    return loaded
