"""`prompt-dt`: no tuning. The prompt is the tail of one few-shot episode of the task (Prompt-DT's protocol);
zero-shot, the tail of a training task's episode (pdiff.methods.zero_shot)."""

from __future__ import annotations

from pdiff.methods.base import TaskContext, TaskResult

DEFAULT_LR = None  # nothing is trained


def tune_task(context: TaskContext) -> TaskResult:
    if context.zero_shot is not None:
        return TaskResult(prompt=context.zero_shot.prompt(context.task, context.rng), tunable_parameters=0)
    assert context.fewshot_prompts is not None
    return TaskResult(
        prompt=context.fewshot_prompts.for_task(context.task, context.rng), tunable_parameters=0
    )
