"""Parameter-efficient additions to a frozen Prompt-DT: bottleneck adapters, LoRA, and a learned soft prompt.

Each wraps or replaces one submodule of `PromptDT` in place (`wrap_linears`, `use_soft_prompt`) so the model's
forward code is unchanged. Freshly added modules compute the identity update (adapters' up-projection and
LoRA's B start at zero; the soft prompt starts from real prompt embeddings), so tuning starts from the
pretrained model's behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Linears of a Prompt-DT block that can be wrapped, by their path inside the block.
BLOCK_LINEARS = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")


class Adapter(nn.Module):
    """Houlsby bottleneck: h + up(relu(down(h))), up initialised to zero (starts as the identity)."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(F.relu(self.down(h)))


class AdaptedLinear(nn.Module):
    """A frozen linear layer followed by an adapter on its output."""

    def __init__(self, base: nn.Linear, width: int) -> None:
        super().__init__()
        self.base = base
        self.adapter = Adapter(base.out_features, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(self.base(x))


class LoRALinear(nn.Module):
    """base(x) + (alpha / rank) · x Aᵀ Bᵀ: a rank-`rank` update of a frozen linear (Hu et al. 2021).

    A starts as LoRA's Kaiming-uniform init, B at zero, so the update starts at zero.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale


def wrap_linears(model: nn.Module, targets: list[str], wrap: Callable[[nn.Linear], nn.Module]) -> int:
    """Replace `targets` (paths in BLOCK_LINEARS) of every block of `model` by `wrap(linear)`; count them."""
    unknown = sorted(set(targets) - set(BLOCK_LINEARS))
    if unknown:
        raise ValueError(f"unknown block linears {unknown}; choose from {list(BLOCK_LINEARS)}")
    wrapped = 0
    for block in model.blocks:
        for target in targets:
            parent_path, name = target.split(".")
            parent = block.get_submodule(parent_path)
            linear = getattr(parent, name)
            if not isinstance(linear, nn.Linear):
                raise ValueError(f"{target} is already wrapped ({type(linear).__name__})")
            setattr(parent, name, wrap(linear))
            wrapped += 1
    return wrapped


class SoftPrompt(nn.Module):
    """Stands in for a Prompt-DT's prompt embedding: learned token embeddings (1, 3H, E), whatever the prompt.

    The prompt's mask still applies (padding steps stay masked), so a soft prompt is used with the prompt it
    was initialised from.
    """

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.zeros(1, tokens, dim))

    def forward(self, states: Tensor, actions: Tensor, returns_to_go: Tensor, timesteps: Tensor) -> Tensor:
        return self.embeddings.expand(states.shape[0], -1, -1)


def use_soft_prompt(model: nn.Module) -> SoftPrompt:
    """Replace `model.prompt_embed` by a SoftPrompt of the same shape (3 tokens per prompt step)."""
    soft = SoftPrompt(3 * model.config.prompt_len, model.config.embed_dim)
    model.prompt_embed = soft
    return soft
