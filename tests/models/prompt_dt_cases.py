"""Example inputs and builders for Prompt-DT tests (shared by the test modules in this folder)."""

from __future__ import annotations

from dataclasses import replace

import torch

from pdiff.models.prompt_dt import Prompt, PromptDT, PromptDTConfig

# (state_dim, act_dim) of the cheetah families and of Meta-World.
FAMILY_DIMS = [(20, 6), (39, 4)]


def model_config_for(config: PromptDTConfig) -> dict:
    """What a pretrain stage would store beside the weights."""
    return {
        "architecture": config.to_dict(),
        "family": "cheetah-vel" if config.state_dim == 20 else "metaworld-reach",
        "state_mean": [0.5] * config.state_dim,
        "state_std": [2.0] * config.state_dim,
        "rtg_scale": 500.0,
    }


def build_prompt_dt(model_config: dict) -> PromptDT:
    return PromptDT(PromptDTConfig.from_dict(model_config["architecture"]))


def example_prompt(config: PromptDTConfig, prompts: int, seed: int, pad: bool = True) -> Prompt:
    g = torch.Generator().manual_seed(seed)
    steps = config.prompt_len
    start = torch.randint(0, config.max_ep_len - steps, (prompts, 1), generator=g)
    mask = torch.ones(prompts, steps)
    if pad:
        mask[-1, :2] = 0  # a short prompt episode, left-padded
    return Prompt(
        states=torch.randn(prompts, steps, config.state_dim, generator=g),
        actions=torch.rand(prompts, steps, config.act_dim, generator=g) * 2 - 1,
        returns_to_go=torch.randn(prompts, steps, 1, generator=g),
        timesteps=start + torch.arange(steps),
        mask=mask,
    )


def example_inputs(
    config: PromptDTConfig, batch: int = 3, seed: int = 0, pad: bool = True, prompt: Prompt | None = None
) -> dict:
    """Keyword arguments of PromptDT.forward: row 0 left-padded by 7 steps, one prompt per row."""
    g = torch.Generator().manual_seed(seed + 1)
    steps = config.context_len
    start = torch.randint(0, config.max_ep_len - steps, (batch, 1), generator=g)
    mask = torch.ones(batch, steps)
    if pad:
        mask[0, :7] = 0
    return {
        "states": torch.randn(batch, steps, config.state_dim, generator=g),
        "actions": torch.rand(batch, steps, config.act_dim, generator=g) * 2 - 1,
        "returns_to_go": torch.randn(batch, steps, 1, generator=g),
        "timesteps": start + torch.arange(steps),
        "attention_mask": mask,
        "prompt": prompt if prompt is not None else example_prompt(config, batch, seed, pad),
    }


def with_prompt(inputs: dict, **changes: torch.Tensor) -> dict:
    return {**inputs, "prompt": replace(inputs["prompt"], **changes)}


def select_prompts(prompt: Prompt, rows: torch.Tensor) -> Prompt:
    """Copies of the given prompts, one per row (what the reference feeds: no shared rows)."""
    return Prompt(
        prompt.states[rows],
        prompt.actions[rows],
        prompt.returns_to_go[rows],
        prompt.timesteps[rows],
        prompt.mask[rows],
    )
