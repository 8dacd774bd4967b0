"""`soft-prompt`: the prompt's token embeddings are the only trainable parameters (Lester et al. 2021 style).

The frozen Prompt-DT embeds a prompt into 3·K* tokens (R̂, s, a per step) of width E. Here those 3·K*·E
numbers are a free tensor, initialised from the embeddings of the task's few-shot tail prompt (so tuning
starts at the prompt-dt baseline) and trained with the frozen model's action loss on the few-shot segments.
Tunable parameters: 3·K*·E (1,920 for the default K* = 5, E = 128).

Default learning rate 1e-3 [ours]: the paper gives none; prompt tuning needs a larger step than weight
fine-tuning, and 1e-3 is the usual Adam choice for it.
"""

from __future__ import annotations

from typing import Any

import torch

from pdiff.data.batches import Segments
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.finetuning import tune_weights
from pdiff.methods.options import MethodOptions
from pdiff.models.adapters import use_soft_prompt
from pdiff.models.prompt_dt import PromptDT

DEFAULT_LR = 1e-3


class Options(MethodOptions):
    """soft-prompt has no settings of its own: the shared tune settings (steps, lr, batch_size, grad_clip) are
    all."""


def attach(model: PromptDT, options: dict[str, Any]) -> None:
    use_soft_prompt(model)


def tune_task(context: TaskContext) -> TaskResult:
    frozen = context.policy.model

    def from_fewshot_prompt(model: PromptDT, prompt: Segments) -> None:
        with torch.no_grad():
            model.prompt_embed.embeddings.copy_(frozen.embed_prompt(prompt.to_prompt(context.device)))

    return tune_weights(context, attach, {}, initialise=from_fewshot_prompt)
