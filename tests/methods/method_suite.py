"""Shared tester suite for tuning methods (d3rlpy style): `test_methods.py` runs it for every registered
method.

A new method in pdiff.methods.registry.METHODS is tested automatically; `expected_tunable_parameters` must
learn its definition (the test fails until it does).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from pdiff.compute import Compute
from pdiff.config import resolve_config
from pdiff.data.batches import Segments
from pdiff.data.fewshot import load_fewshot
from pdiff.envs import get_family
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.context import method_settings, task_context
from pdiff.methods.registry import NEEDS_DIFFUSE, trains
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig
from pdiff.rollouts.rollout import load_policy
from pdiff.stages.common import checkpoint_of
from pdiff.stages.tune import TuneConfig
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run

REACH = "metaworld-reach"
CPU = torch.device("cpu")
CPU_FP32 = Compute("cpu", 1, "fp32", "tests", "")  # how tune computes, for method_settings


def tune_context(
    ws: Workspace,
    pretrain: Run,
    method: str,
    task: int,
    *,
    diffuse: Run | None = None,
    rng_seed: int = 0,
    out_dir: Path | None = None,
    **flags: Any,  # tune settings as on the command line
) -> tuple[TaskContext, TuneConfig]:
    """What `pdiff tune --method METHOD` hands the method for seed 0 and `task` at the smoke preset on
    reach, and the tune config it comes from; its draws come from `rng_seed`, so tests can pin them."""
    family = get_family(REACH)
    config = resolve_config(
        TuneConfig, "tune", workspace=ws, preset="smoke", flags={"env": REACH, "method": method, **flags}
    )
    policy, _ = load_policy(checkpoint_of(pretrain), CPU)
    fewshot = load_fewshot(ws.datasets_dir, family.name, [task], config.data_kind, config.shots)
    diffusion = checkpoint_of(diffuse) if diffuse is not None and method in NEEDS_DIFFUSE else None
    settings = method_settings(config, family, diffusion, CPU_FP32)
    per_episode = config.shots > 0 and not family.resets_vary  # as tune decides (pdiff.methods.adaptations)
    context = task_context(
        policy, fewshot, 0, task, settings, CPU, out_dir or ws.root, prompt_per_episode=per_episode
    )
    return dataclasses.replace(context, rng=np.random.default_rng(rng_seed)), config


def ptdt_context(ws: Workspace, pretrain: Run, **flags: Any) -> TaskContext:
    """ptdt's context on reach's second test task (the PTDT tests' common ground)."""
    return tune_context(ws, pretrain, "ptdt", get_family(REACH).test_tasks[1], rng_seed=5, **flags)[0]


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
    if method == "prompt-diffuser":  # the whole denoiser is fine-tuned, or nothing (condition-only)
        if options.adapt == "condition-only":
            return 0
        with safe_open(denoiser_file, framework="pt") as handle:
            return sum(_numel(handle, key) for key in handle.keys())  # noqa: SIM118
    raise AssertionError(
        f"tests/methods/method_suite.py does not know the tunable parameters of {method!r}: add them"
    )


def _numel(handle, key: str) -> int:
    return int(np.prod(handle.get_slice(key).get_shape()))


@torch.no_grad()
def actions_of(model: PromptDT, inputs: Segments, prompt: Segments) -> torch.Tensor:
    """Eval-mode action predictions of `model` on fixed segments with the prompt's first row."""
    model.eval()
    batch = inputs.to_torch()
    prompt = prompt.take(np.arange(1))
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


def assert_result_shape(result: TaskResult, arch: PromptDTConfig, rows: tuple[int, ...] = (1,)) -> None:
    """A prompt of one row, or one per few-shot episode where `rows` allows it (prompt_per_episode)."""
    assert result.prompt.states.shape[0] in rows
    assert result.prompt.states.shape[1:] == (arch.prompt_len, arch.state_dim)
    assert result.prompt.actions.shape == (result.prompt.states.shape[0], arch.prompt_len, arch.act_dim)
    assert all(np.isfinite(v) for v in result.metrics.values()), result.metrics
