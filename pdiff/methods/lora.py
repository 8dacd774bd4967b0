"""`lora`: low-rank updates W + (α/r)·B·A on chosen linears of every block, the Prompt-DT frozen
(Hu et al. 2021).

A (r × in) starts Kaiming-uniform and B (out × r) at zero, so the tuned model starts as the frozen one. The
wrapped linears are `targets` (default: the attention's fused qkv and output projection; `mlp.fc` and
`mlp.proj` can be added). Trained with the frozen model's action loss on the few-shot segments.
Tunable parameters: r·(in + out) per wrapped linear, per block (9,216 for E = 128, 3 layers, r = 4, attention
only: r·(E + 3E) + r·(E + E) per block).

Default learning rate 1e-3 [ours]: the paper gives none; LoRA's own GPT-2 runs use 2e-4 over many epochs, a
larger step suits a few hundred steps.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.finetuning import tune_weights
from pdiff.methods.options import MethodOptions
from pdiff.models.adapters import LoRALinear, wrap_linears
from pdiff.models.prompt_dt import PromptDT

DEFAULT_LR = 1e-3
Target = Literal["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"]


class Options(MethodOptions):
    rank: int = Field(4, ge=1, description="Rank r of each update.")
    alpha: float = Field(4.0, gt=0, description="The update is scaled by alpha / rank.")
    targets: list[Target] = Field(
        ["attn.qkv", "attn.proj"], min_length=1, description="Linears of every block that get an update."
    )


def attach(model: PromptDT, options: dict[str, Any]) -> None:
    rank, alpha = options["rank"], options["alpha"]
    wrap_linears(model, options["targets"], lambda linear: LoRALinear(linear, rank, alpha))


def tune_task(context: TaskContext) -> TaskResult:
    return tune_weights(context, attach, context.options(Options).model_dump())
