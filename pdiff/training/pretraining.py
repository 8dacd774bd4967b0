"""Pretraining a Prompt-DT on the training tasks of a family (Prompt-DT's recipe).

Each step draws `batch_per_task` K-step segments from every training task, each with a fresh tail prompt
of its own task, and minimises the masked action MSE (AdamW, linear warm-up, gradient clipping). States
are normalised with statistics of the training tasks only; `include_test_tasks` (the full-data model)
trains on, and takes the statistics of, the test tasks as well, each task still getting `batch_per_task`
segments a step: the same per-task budget as the Prompt-DT's. Checkpoints keep inference files
(model.safetensors + model_config.json) apart from resume state (train_state.pt).

Under torchrun every rank draws the same batch (same seed) and trains on its slice of the rows; the loss is
normalised by the global count of real steps, so the result is that of one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from pdiff.compute import Compute, use_precision
from pdiff.console import StageProgress, log
from pdiff.data.batches import PromptBank, SegmentSampler
from pdiff.data.loader import FamilyData, load_family_data
from pdiff.distributed import DistInfo, all_reduce_sum
from pdiff.envs.base import TaskFamily
from pdiff.errors import ArtifactError
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig
from pdiff.training.state import CheckpointStore, check_finite, seed_everything


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    embed_dim: int = Field(128, ge=8, description="Token embedding width.")
    n_layer: int = Field(3, ge=1, description="Transformer blocks.")
    n_head: int = Field(1, ge=1, description="Attention heads.")
    context_len: int = Field(20, ge=1, description="K: steps of the main sequence.")
    prompt_len: int = Field(5, ge=1, description="K*: steps of the trajectory prompt.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout (residual, attention, embedding).")
    max_ep_len: int = Field(1000, ge=1, description="Size of the timestep-embedding table.")


class PretrainSettings(Protocol):
    """What pretraining reads of its settings: the pretrain stage's config (pdiff.stages.pretrain), which
    describes each of them."""

    data_kind: str
    include_test_tasks: bool
    max_episodes_per_task: int | None
    steps: int
    batch_per_task: int
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    eval_target: float | None
    model: ModelSettings
    seed: int
    log_every: int
    checkpoint_every: int
    curve_every: int | None


def load_pretraining_data(
    datasets_dir: Path, family: TaskFamily, settings: PretrainSettings
) -> tuple[FamilyData, FamilyData]:
    """The training tasks' episodes of `settings.data_kind`, and their prompt-expert episodes (the
    prompts)."""
    tasks = family.training_tasks(settings.include_test_tasks)
    kwargs = {"max_episodes_per_task": settings.max_episodes_per_task}
    try:
        data = load_family_data(datasets_dir, family.name, settings.data_kind, tasks, **kwargs)
        prompts = load_family_data(datasets_dir, family.name, "prompt-expert", tasks)
    except ArtifactError as exc:
        if not settings.include_test_tasks:
            raise
        test = ",".join(map(str, family.test_tasks))
        raise ArtifactError(
            f"{exc.message} (--include-test-tasks trains on the test tasks {test} too)",
            hint=f"pdiff collect --env {family.name} --tasks {test} "
            f"--kinds {settings.data_kind},prompt-expert",
        ) from exc
    return data, prompts


def model_config_payload(
    family: TaskFamily,
    settings: PretrainSettings,
    arch: PromptDTConfig,
    mean: np.ndarray,
    std: np.ndarray,
    data: FamilyData,
) -> dict[str, Any]:
    """Everything inference needs besides the weights (normalisation included: losing it is the classic
    bug)."""
    return {
        "model": "PromptDT",
        "architecture": arch.to_dict(),
        "family": family.name,
        "state_mean": mean.tolist(),
        "state_std": std.tolist(),
        "rtg_scale": family.rtg_scale,
        "eval_target": settings.eval_target
        if settings.eval_target is not None
        else float(data.episode_returns.max()),
        "eval_target_source": "set" if settings.eval_target is not None else "best training episode return",
        "horizon": family.horizon,
        "train_tasks": family.training_tasks(settings.include_test_tasks),
        "data_kind": settings.data_kind,
        "datasets": list(data.dataset_ids),
    }


@dataclass(frozen=True)
class Pretraining:
    """A freshly initialised Prompt-DT, where its batches come from and what its checkpoints record."""

    model: PromptDT
    sampler: SegmentSampler  # K-step segments of the training tasks
    bank: PromptBank  # tail prompts of the same tasks
    tasks: list[int]
    device: torch.device
    state_mean: np.ndarray
    state_std: np.ndarray
    payload: dict[str, Any]  # model_config.json


def prepare_pretraining(
    settings: PretrainSettings, family: TaskFamily, data: FamilyData, prompts: FamilyData, compute: Compute
) -> Pretraining:
    tasks = family.training_tasks(settings.include_test_tasks)
    mean, std = data.state_stats(tasks)
    norm = {
        "rtg_scale": family.rtg_scale,
        "state_mean": mean,
        "state_std": std,
        "max_ep_len": settings.model.max_ep_len,
    }
    sampler = SegmentSampler(data, context_len=settings.model.context_len, **norm)
    bank = PromptBank(prompts, prompt_len=settings.model.prompt_len, **norm)
    arch = PromptDTConfig(state_dim=family.obs_dim, act_dim=family.act_dim, **settings.model.model_dump())
    seed_everything(settings.seed)
    device = compute.torch_device
    model = use_precision(PromptDT(arch).to(device), compute)
    payload = model_config_payload(family, settings, arch, mean, std, data)
    return Pretraining(model, sampler, bank, tasks, device, mean, std, payload)


def masked_sse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of squared action errors over real steps (normalised by the caller, across DDP ranks)."""
    return (((pred - target) ** 2) * mask.unsqueeze(-1)).sum()


def pretrain_prompt_dt(
    pretraining: Pretraining,
    settings: PretrainSettings,
    family: TaskFamily,
    store: CheckpointStore,
    info: DistInfo,
    *,
    log_metrics: Callable[[dict[str, Any]], None] | None = None,
    measure_curve: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Train `pretraining.model` for `settings.steps`, resuming from `store`'s newest checkpoint. Rank 0 logs
    a metrics row to `log_metrics` every `log_every` steps and, with `measure_curve`, a learning-curve point
    every `curve_every` steps."""
    model, device, tasks = pretraining.model, pretraining.device, pretraining.tasks
    # fused: one kernel for the whole update (~5 % of a step at the paper's cheetah-dir batch); same maths
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, fused=True
    )
    warmup = max(settings.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 1.0))
    rng = np.random.default_rng(settings.seed)
    step = store.restore(model, optimizer, scheduler, rng) if store.latest() else 0
    global_loss = store.restored_extra.get("loss")  # a resume past the last step reports the same loss
    if step:
        log.info("resumed from step %d", step)
    trained = torch.nn.parallel.DistributedDataParallel(model) if info.enabled else model

    with StageProgress(f"pretrain {family.name}", total=settings.steps, completed=step) as bar:
        while step < settings.steps:
            batch = pretraining.sampler.sample(rng, tasks, settings.batch_per_task)
            prompt = pretraining.bank.sample(rng, batch.tasks)
            rows = np.arange(len(batch))[info.shard(len(batch))]
            local, local_prompt = batch.take(rows).to_torch(device), prompt.take(rows).to_prompt(device)
            count = all_reduce_sum(float(batch.mask[rows].sum()), info) * family.act_dim
            model.train()
            pred = trained(
                local["states"],
                local["actions"],
                local["returns_to_go"],
                local["timesteps"],
                local["mask"],
                local_prompt,
            )
            sse = masked_sse(pred, local["actions"], local["mask"])
            loss = sse * info.world_size / count  # DDP averages gradients over ranks: this is the global mean
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip))
            global_loss = all_reduce_sum(float(sse.detach()), info) / count
            check_finite("pretrain", step + 1, {"loss": global_loss, "grad_norm": grad_norm}, store)
            optimizer.step()
            scheduler.step()
            step += 1
            if not info.is_main:
                continue
            bar.update(1, loss=global_loss)
            last = step == settings.steps
            if log_metrics is not None and (step % settings.log_every == 0 or last):
                log_metrics(
                    {
                        "step": step,
                        "phase": "train",
                        "loss": global_loss,
                        "lr": scheduler.get_last_lr()[0],
                        "grad_norm": grad_norm,
                    }
                )
            curve_due = settings.curve_every and (step % settings.curve_every == 0 or last)
            if log_metrics is not None and measure_curve is not None and curve_due:
                log_metrics({"step": step, "phase": "curve", **measure_curve()})
            if step % settings.checkpoint_every == 0 or last:
                store.save(
                    step, model, pretraining.payload, optimizer, scheduler, rng, extra={"loss": global_loss}
                )
    return {
        "steps": step,
        "final_loss": global_loss if settings.steps else None,
        # other ranks may get here before rank 0 has written the checkpoint; only rank 0 records it
        "checkpoint": store.latest_dir() if info.is_main else None,
    }
