"""`adaptor`: bottleneck adapters in every block, the Prompt-DT frozen (Houlsby et al. 2019).

Each block gets two adapters, one after the attention output projection and one after the MLP, each
h + up(relu(down(h))) with E → w → E and `up` initialised to zero (the tuned model starts as the frozen
one). They are trained with the frozen model's action loss on the few-shot segments.
Tunable parameters: n_layer · 2 · (2·E·w + w + E) (25,440 for E = 128, 3 layers, w = 16).

Default learning rate 1e-3 [ours]: the paper gives none; 1e-3 is the upper end of Houlsby et al.'s range,
suited to a few hundred steps.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.finetuning import tune_weights
from pdiff.methods.options import MethodOptions
from pdiff.models.adapters import AdaptedLinear, wrap_linears
from pdiff.models.prompt_dt import PromptDT

DEFAULT_LR = 1e-3
PLACES = ["attn.proj", "mlp.proj"]  # the outputs of the two sublayers, before the residual addition


class Options(MethodOptions):
    width: int = Field(16, ge=1, description="Bottleneck width of each adapter.")


def attach(model: PromptDT, options: dict[str, Any]) -> None:
    wrap_linears(model, PLACES, lambda linear: AdaptedLinear(linear, options["width"]))


def tune_task(context: TaskContext) -> TaskResult:
    return tune_weights(context, attach, context.options(Options).model_dump())
