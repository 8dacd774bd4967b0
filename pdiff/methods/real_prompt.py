"""`prompt-dt`: no tuning. The prompt is the tail of one few-shot episode of the task (Prompt-DT's protocol),
or of each where resets do not vary (TaskContext.prompt_per_episode);
zero-shot `none`, the tail of a random training task's episode (pdiff.methods.zero_shot)."""

from __future__ import annotations

from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.options import MethodOptions

DEFAULT_LR = None  # nothing is trained


class Options(MethodOptions):
    """prompt-dt has no settings: nothing is tuned."""


def tune_task(context: TaskContext) -> TaskResult:
    if context.zero_shot is not None:
        return TaskResult(prompt=context.zero_shot.prompt(context.task, context.rng), tunable_parameters=0)
    return TaskResult(prompt=context.fewshot_tails(), tunable_parameters=0)
