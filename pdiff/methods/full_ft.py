"""`full-ft` (Prompt-DT-FT): every weight of the Prompt-DT fine-tuned on the few-shot data (BC action MSE).

Tunable parameters: all of the Prompt-DT's. Each (seed, task) saves a full copy of the weights.

Default learning rate 1e-4 [Prompt-DT]: the learning rate the model was pretrained with.
"""

from __future__ import annotations

from typing import Any

from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.finetuning import tune_weights
from pdiff.methods.options import MethodOptions
from pdiff.models.prompt_dt import PromptDT

DEFAULT_LR = 1e-4


class Options(MethodOptions):
    """full-ft has no settings of its own: the shared tune settings (steps, lr, batch_size, grad_clip) are
    all."""


def attach(model: PromptDT, options: dict[str, Any]) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(True)


def tune_task(context: TaskContext) -> TaskResult:
    return tune_weights(context, attach, {})
