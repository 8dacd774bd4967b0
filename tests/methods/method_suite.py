"""Shared tester suite for tuning methods (d3rlpy style): `test_methods.py` runs it for every registered
method.

A new method in pdiff.methods.registry.METHODS is tested automatically; `expected_tunable_parameters` must
learn its definition (the test fails until it does).
"""

from __future__ import annotations

import numpy as np
import torch
from safetensors import safe_open

from pdiff.data.batches import Segments
from pdiff.methods.base import TaskResult
from pdiff.methods.registry import trains
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig
from pdiff.stages.tune import TuneConfig

# (in, out) features of the block linears LoRA can wrap, for embed width E.
LINEAR_SHAPES = {"attn.qkv": (1, 3), "attn.proj": (1, 1), "mlp.fc": (1, 4), "mlp.proj": (4, 1)}


def expected_tunable_parameters(
    method: str, config: TuneConfig, arch: PromptDTConfig, plm_parameters: int, denoiser_file: str | None
) -> int:
    """Each method's tunable-parameter count, from its definition and the config alone."""
    e, layers, h = arch.embed_dim, arch.n_layer, arch.prompt_len
    if not trains(method):
        return 0
    if method == "soft-prompt":  # 3 tokens (R̂, s, a) per prompt step, each E wide
        return 3 * h * e
    options = config.options()
    if method == "adaptor":  # two adapters per block: down E·w + w, up w·E + E
        w = options.width
        return layers * 2 * (2 * e * w + w + e)
    if method == "lora":  # A (r × in) and B (out × r) per wrapped linear
        r = options.rank
        return layers * sum(r * e * (i + o) for i, o in (LINEAR_SHAPES[t] for t in options.targets))
    if method == "ptdt":  # states, actions, RTG (and timesteps) of the H prompt steps
        per_step = arch.state_dim + arch.act_dim + 1 + (1 if options.perturb == "all" else 0)
        return h * per_step
    if method == "full-ft":
        return plm_parameters
    if method == "prompt-diffuser":  # the whole denoiser is fine-tuned
        with safe_open(denoiser_file, framework="pt") as handle:
            return sum(_numel(handle, key) for key in handle.keys())  # noqa: SIM118
    raise AssertionError(
        f"tests/methods/method_suite.py does not know the tunable parameters of {method!r}: add them"
    )


def _numel(handle, key: str) -> int:  # noqa: ANN001
    return int(np.prod(handle.get_slice(key).get_shape()))


@torch.no_grad()
def actions_of(model: PromptDT, inputs: Segments, prompt: Segments) -> torch.Tensor:
    """Eval-mode action predictions of `model` on fixed segments with a one-row prompt."""
    model.eval()
    batch = inputs.to_torch()
    return model(
        batch["states"],
        batch["actions"],
        batch["returns_to_go"],
        batch["timesteps"],
        batch["mask"],
        prompt.to_prompt(),
    )


def assert_frozen_parts_equal(model: torch.nn.Module, frozen: PromptDT, tuned_names: set[str]) -> None:
    """Every parameter of `model` but the tuned ones equals the frozen model's (wrapped linears keep theirs
    under `.base`)."""
    reference = frozen.state_dict()
    for name, parameter in model.named_parameters():
        if name in tuned_names:
            continue
        source = name.replace(".base.", ".")
        assert source in reference, f"{name} is neither tuned nor a parameter of the frozen Prompt-DT"
        assert torch.equal(parameter.detach(), reference[source]), f"frozen parameter {name} changed"


def assert_prompt_equal(a: Segments, b: Segments) -> None:
    for field in ("states", "actions", "returns_to_go", "timesteps"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def assert_result_shape(result: TaskResult, arch: PromptDTConfig) -> None:
    assert result.prompt.states.shape == (1, arch.prompt_len, arch.state_dim)
    assert result.prompt.actions.shape == (1, arch.prompt_len, arch.act_dim)
    assert all(np.isfinite(v) for v in result.metrics.values()), result.metrics
