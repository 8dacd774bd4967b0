"""`prompt-dt`: no tuning. The prompt is the tail of one few-shot episode of the task (Prompt-DT's protocol)."""

from __future__ import annotations

from pdiff.methods.base import TaskContext, TaskResult

DEFAULT_LR = None  # nothing is trained


def tune_task(context: TaskContext) -> TaskResult:
    return TaskResult(
        prompt=context.fewshot_prompts.for_task(context.task, context.rng), tunable_parameters=0
    )
