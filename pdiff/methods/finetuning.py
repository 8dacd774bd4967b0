"""What the weight-changing methods (soft-prompt, adaptor, lora, full-ft) share.

A method is an `attach(model, options)` that adds or unfreezes its tunable parameters on a copy of the frozen
Prompt-DT (everything else stays frozen). `tune_weights` trains them with the frozen model's action loss on
K-step segments of the task's few-shot episodes, with the task's few-shot prompt. The tuned tensors (only
the trainable ones) are saved per (seed, task) as safetensors, with the method and its options in the
header; `load_tuned` rebuilds the evaluated model from the frozen one plus that file (no pickle).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from pdiff.data.batches import Segments
from pdiff.errors import ArtifactError, RunFailed
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.models.prompt_dt import PromptDT, action_loss
from pdiff.workspace.atomic import atomic_write_bytes

Attach = Callable[[PromptDT, dict[str, Any]], None]


def tunable_copy(frozen: PromptDT, attach: Attach, options: dict[str, Any]) -> PromptDT:
    """A copy of `frozen` with every weight frozen, then the method's tunable parameters attached."""
    model = copy.deepcopy(frozen)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    attach(model, options)
    return model.to(next(frozen.parameters()).device)


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def finetune(
    model: PromptDT,
    prompt: Segments,
    context: TaskContext,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    grad_clip: float | None,
) -> dict[str, float]:
    """Adam on the trainable parameters; loss = action MSE on `batch_size` few-shot segments per step.

    Train mode (dropout on), as in pretraining. One prompt throughout: the one the model is evaluated with.
    A selection trial may stop it early (TaskContext.stop_after).
    """
    params = list(trainable(model).values())
    optimizer = torch.optim.Adam(params, lr=lr)
    prompt_tensors = prompt.to_prompt(context.device)  # a batch-1 prompt serves every row
    tasks = [context.task] * batch_size
    losses: list[float] = []
    model.train()
    for step in range(steps):
        batch = context.fewshot.sample(context.rng, tasks, 1).to_torch(context.device)
        pred = model(
            batch["states"],
            batch["actions"],
            batch["returns_to_go"],
            batch["timesteps"],
            batch["mask"],
            prompt_tensors,
        )
        loss = action_loss(pred, batch["actions"], batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        losses.append(float(loss.detach()))
        if not torch.isfinite(loss):
            raise RunFailed(
                f"tune loss became {losses[-1]} at step {step + 1} on task {context.task}",
                hint="lower the learning rate: pdiff tune --set lr=...",
            )
        optimizer.step()
        if context.stop_after(step + 1, lambda: TaskResult(prompt=prompt, tunable_parameters=0, model=model)):
            break
    model.eval()
    return {"loss_first": losses[0], "loss_last": losses[-1]} if losses else {}


def tune_weights(
    context: TaskContext,
    attach: Attach,
    options: dict[str, Any],
    initialise: Callable[[PromptDT, Segments], None] | None = None,
) -> TaskResult:
    """The whole per-task recipe: draw the task's few-shot prompt, attach, (initialise), fine-tune."""
    settings = context.settings
    prompt = context.fewshot_prompts.for_task(context.task, context.rng)
    torch.manual_seed(context.torch_seed)  # new parameters' init and dropout
    model = tunable_copy(context.policy.model, attach, options)
    if initialise is not None:
        initialise(model, prompt)
    metrics = finetune(
        model,
        prompt,
        context,
        steps=settings.steps,
        batch_size=settings.batch_size,
        lr=settings.lr,
        grad_clip=settings.grad_clip,
    )
    count = sum(p.numel() for p in trainable(model).values())
    # Tuned with one prompt; where resets do not vary it is rolled out with each few-shot prompt, so that no
    # single prompt decides the cell (soft-prompt's learned embeddings replace the prompt: those are copies).
    if context.prompt_per_episode:
        prompt = context.fewshot_tails()
    return TaskResult(prompt=prompt, tunable_parameters=count, metrics=metrics, model=model, options=options)


def tuned_path(run_dir: Path, seed: int, task: int) -> Path:
    """Where a tune run keeps the tuned tensors of one (seed, task)."""
    return run_dir / "tuned" / f"seed-{seed}" / f"task-{task:02d}.safetensors"


def save_tuned(path: Path, model: torch.nn.Module, method: str, options: dict[str, Any]) -> None:
    """The trainable tensors of `model`, with the method and its options in the safetensors header."""
    tensors = {name: p.detach().to("cpu", copy=True).contiguous() for name, p in trainable(model).items()}
    header = {"pdiff_tuned": "1", "method": method, "options": json.dumps(options, sort_keys=True)}
    atomic_write_bytes(path, save(tensors, metadata=header))


def load_tuned(frozen: PromptDT, path: Path, method: str, attach: Attach) -> PromptDT:
    """The evaluated model: `frozen` with `method`'s parameters attached and loaded from `path` (eval
    mode)."""
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", hint="re-run `pdiff tune`")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        options = json.loads(header["options"])
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise ArtifactError(
            f"{path} is corrupt ({exc.__class__.__name__})", hint="re-run `pdiff tune`"
        ) from exc
    if header.get("method") != method:
        raise ArtifactError(
            f"{path} holds {header.get('method')!r} weights, not {method!r}",
            hint="evaluate the tune run that wrote it: pdiff eval --tune RUN",
        )
    model = tunable_copy(frozen, attach, options)
    expected = trainable(model)
    if set(tensors) != set(expected) or any(tensors[k].shape != v.shape for k, v in expected.items()):
        raise ArtifactError(
            f"{path} does not match the {method} parameters of this Prompt-DT",
            hint="evaluate it with the pretrain run it was tuned from",
        )
    with torch.no_grad():
        for name, parameter in expected.items():
            parameter.copy_(tensors[name])
    for parameter in expected.values():
        parameter.requires_grad_(False)
    return model.eval()
