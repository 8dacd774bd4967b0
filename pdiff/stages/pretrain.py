"""`pdiff pretrain`: a Prompt-DT trained on the training tasks of a family (Prompt-DT's recipe).

Each step draws `batch_per_task` K-step segments from every training task, each with a fresh tail prompt
of its own task, and minimises the masked action MSE (AdamW, linear warm-up, gradient clipping). States
are normalised with statistics of the training tasks only; `include_test_tasks` (the full-data model)
trains on, and takes the statistics of, the test tasks as well, each task still getting `batch_per_task`
segments a step: the same per-task budget as the Prompt-DT's. Checkpoints keep inference files
(model.safetensors + model_config.json) apart from resume state (train_state.pt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from pdiff.compute import ComputeConfig, setup_compute, use_precision
from pdiff.config import register_stage_config
from pdiff.console import StageProgress, log
from pdiff.data.batches import PromptBank, SegmentSampler
from pdiff.data.loader import FamilyData, load_family_data
from pdiff.distributed import DistInfo, all_reduce_sum, broadcast, init_distributed, resolve_device, shutdown
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily
from pdiff.errors import ArtifactError
from pdiff.eval.curve import TrainingTaskCurve
from pdiff.eval.rollout import FrozenPolicy
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig
from pdiff.stages.common import open_run, record_trained, stage_run
from pdiff.training import CheckpointStore, check_finite, seed_everything
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    embed_dim: int = Field(128, ge=8, description="Token embedding width.")
    n_layer: int = Field(3, ge=1, description="Transformer blocks.")
    n_head: int = Field(1, ge=1, description="Attention heads.")
    context_len: int = Field(20, ge=1, description="K: steps of the main sequence.")
    prompt_len: int = Field(5, ge=1, description="K*: steps of the trajectory prompt.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout (residual, attention, embedding).")
    max_ep_len: int = Field(1000, ge=1, description="Size of the timestep-embedding table.")


class PretrainConfig(ComputeConfig):
    # before eval_target was derived from the data, every run started from the family's constant
    OLDER: ClassVar[dict[str, Any]] = {
        "eval_target": lambda data: get_family(str(data["env"])).eval_target,
        "curve_every": None,
        "curve_tasks": 5,
        "curve_episodes": 1,
        "precision": "fp32",
    }
    env: str = Field("metaworld-reach", description="Task family.")
    data_kind: str = Field("expert", description="Dataset kind the model is trained on.")
    include_test_tasks: bool = Field(False, description="Also train on the test tasks (the full-data model).")
    max_episodes_per_task: int | None = Field(
        None, ge=1, description="Use at most this many episodes per task."
    )
    steps: int = Field(50_000, ge=1, description="Gradient steps (the reference: 5,000 iterations × 10).")
    batch_per_task: int = Field(16, ge=1, description="Segments per training task per step.")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(10_000, ge=0, description="Linear learning-rate warm-up steps.")
    grad_clip: float = Field(0.25, gt=0, description="Global gradient-norm clip.")
    eval_target: float | None = Field(
        None,
        description="Return-to-go an episode starts from at evaluation (default: the best episode return in "
        "the training data, a return the data shows is reachable within the horizon).",
    )
    model: ModelSettings = Field(default_factory=ModelSettings, description="Architecture.")
    seed: int = Field(0, ge=0, description="Seed of initialisation, dropout and batch sampling.")
    log_every: int = Field(100, ge=1, description="Append a metrics row every this many steps.")
    checkpoint_every: int = Field(
        1000, ge=1, description="Write a resumable checkpoint every this many steps."
    )
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept on disk.")
    curve_every: int | None = Field(
        None,
        ge=1,
        description="Every this many steps, roll the model out on `curve_tasks` training tasks with their own "
        "prompts and log train_task_return: the learning curve budgets are sized by (off: rollouts cost time).",
    )
    curve_tasks: int = Field(5, ge=1, description="Training tasks the learning curve rolls out.")
    curve_episodes: int = Field(1, ge=1, description="Episodes per task and curve point.")


register_stage_config("pretrain", PretrainConfig)


def load_data(
    workspace: Workspace, family: TaskFamily, config: PretrainConfig
) -> tuple[FamilyData, FamilyData]:
    tasks = family.training_tasks(config.include_test_tasks)
    kwargs = {"max_episodes_per_task": config.max_episodes_per_task}
    try:
        data = load_family_data(workspace.datasets_dir, family.name, config.data_kind, tasks, **kwargs)
        prompts = load_family_data(workspace.datasets_dir, family.name, "prompt-expert", tasks)
    except ArtifactError as exc:
        if not config.include_test_tasks:
            raise
        test = ",".join(map(str, family.test_tasks))
        raise ArtifactError(f"{exc.message} (--include-test-tasks trains on the test tasks {test} too)",
                            hint=f"pdiff collect --env {family.name} --tasks {test} "
                            f"--kinds {config.data_kind},prompt-expert") from exc  # fmt: skip
    return data, prompts


def model_config_payload(
    family: TaskFamily,
    config: PretrainConfig,
    arch: PromptDTConfig,
    mean: np.ndarray,
    std: np.ndarray,
    data: FamilyData,
) -> dict[str, Any]:
    """Everything inference needs besides the weights (normalisation included: losing it is the classic bug)."""
    return {
        "model": "PromptDT",
        "architecture": arch.to_dict(),
        "family": family.name,
        "state_mean": mean.tolist(),
        "state_std": std.tolist(),
        "rtg_scale": family.rtg_scale,
        "eval_target": config.eval_target
        if config.eval_target is not None
        else float(data.episode_returns.max()),
        "eval_target_source": "set" if config.eval_target is not None else "best training episode return",
        "horizon": family.horizon,
        "train_tasks": family.training_tasks(config.include_test_tasks),
        "data_kind": config.data_kind,
        "datasets": list(data.dataset_ids),
    }


def masked_sse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of squared action errors over real steps (normalised by the caller, across DDP ranks)."""
    return (((pred - target) ** 2) * mask.unsqueeze(-1)).sum()


def train(
    run: Run | None, run_dir: Path, workspace: Workspace, config: PretrainConfig, info: DistInfo
) -> dict:
    family = get_family(config.env)
    compute = setup_compute(config, workspace.root, run.manifest.get("compute") if run else None, info)
    device = compute.torch_device
    if run is not None:
        run.manifest["compute"] = compute.record()
    data, prompt_data = load_data(workspace, family, config)
    if run is not None:
        run.record_inputs("dataset", zip(data.dataset_ids + prompt_data.dataset_ids,
                                         data.content_sha256 + prompt_data.content_sha256, strict=True))  # fmt: skip
    tasks = family.training_tasks(config.include_test_tasks)
    mean, std = data.state_stats(tasks)
    norm = {
        "rtg_scale": family.rtg_scale,
        "state_mean": mean,
        "state_std": std,
        "max_ep_len": config.model.max_ep_len,
    }
    sampler = SegmentSampler(data, context_len=config.model.context_len, **norm)
    bank = PromptBank(prompt_data, prompt_len=config.model.prompt_len, **norm)
    arch = PromptDTConfig(state_dim=family.obs_dim, act_dim=family.act_dim, **config.model.model_dump())

    seed_everything(config.seed)
    model = use_precision(PromptDT(arch).to(device), compute)
    # fused: one kernel for the whole update (~5 % of a step at the paper's cheetah-dir batch); same maths
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    warmup = max(config.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 1.0))
    rng = np.random.default_rng(config.seed)
    store = CheckpointStore(run_dir / "checkpoints", keep=config.keep_checkpoints)
    step = store.restore(model, optimizer, scheduler, rng) if store.latest() else 0
    global_loss = store.restored_extra.get("loss")  # a resume past the last step reports the same loss
    if step:
        log.info("resumed from step %d", step)
    trained = torch.nn.parallel.DistributedDataParallel(model) if info.enabled else model
    payload = model_config_payload(family, config, arch, mean, std, data)
    curve = None
    if config.curve_every and info.is_main:
        curve = TrainingTaskCurve.build(
            family, bank, tasks, config.curve_tasks, config.curve_episodes, config.seed
        )
        reader = FrozenPolicy(model, mean, std, family.rtg_scale, payload["eval_target"], device)

    with StageProgress(f"pretrain {family.name}", total=config.steps, completed=step) as bar:
        while step < config.steps:
            batch = sampler.sample(rng, tasks, config.batch_per_task)
            prompt = bank.sample(rng, batch.tasks)
            rows = np.arange(len(batch))[info.shard(len(batch))]
            local, local_prompt = batch.take(rows).to_torch(device), prompt.take(rows).to_prompt(device)
            count = all_reduce_sum(float(batch.mask[rows].sum()), info) * family.act_dim
            model.train()
            pred = trained(local["states"], local["actions"], local["returns_to_go"], local["timesteps"],
                           local["mask"], local_prompt)  # fmt: skip
            sse = masked_sse(pred, local["actions"], local["mask"])
            loss = (
                sse * info.world_size / count
            )  # DDP averages gradients over ranks: this makes it the global mean
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
            global_loss = all_reduce_sum(float(sse.detach()), info) / count
            check_finite("pretrain", step + 1, {"loss": global_loss, "grad_norm": grad_norm}, store)
            optimizer.step()
            scheduler.step()
            step += 1
            if info.is_main:
                bar.update(1, loss=global_loss)
                if run is not None and (step % config.log_every == 0 or step == config.steps):
                    run.log_metrics({"step": step, "phase": "train", "loss": global_loss, "lr": scheduler.get_last_lr()[0],
                                     "grad_norm": grad_norm})  # fmt: skip
                if (
                    run is not None
                    and curve is not None
                    and (step % config.curve_every == 0 or step == config.steps)
                ):
                    run.log_metrics({"step": step, "phase": "curve", **curve.measure(reader)})
                if step % config.checkpoint_every == 0 or step == config.steps:
                    store.save(step, model, payload, optimizer, scheduler, rng, extra={"loss": global_loss})
    return {
        "steps": step,
        "final_loss": global_loss if config.steps else None,
        "checkpoint": store.latest_dir(),
    }


def run_pretrain(
    workspace: Workspace, config: PretrainConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run | None, dict[str, Any]]:
    """The stage. Under torchrun, rank 0 owns the run directory and every rank trains its batch slice."""
    info = init_distributed(resolve_device(config.device))
    try:
        if not info.is_main:
            run_dir, config = broadcast(None, info)
            return None, train(None, Path(run_dir), workspace, PretrainConfig.model_validate(config), info)
        if resume is None:
            family = get_family(config.env)
            load_data(workspace, family, config)  # missing datasets fail before a run exists
        run, config = open_run(workspace, "pretrain", config, argv=argv, family=config.env, seed=config.seed,
                               resume=resume)  # fmt: skip
        family = get_family(config.env)
        broadcast((str(run.dir), config.model_dump(mode="json")), info)
        with stage_run(run):
            summary = train(run, run.dir, workspace, config, info)
            checkpoint = Path(summary.pop("checkpoint"))
            curves = ["loss", "lr", "grad_norm", "train_task_return", "train_task_success"]
            record_trained(run, checkpoint, curves, f"pretrain {family.name}")
            summary["checkpoint"] = str(checkpoint.relative_to(run.dir))
            run.manifest["summary"].update(summary)
            run.save()
        return run, summary
    finally:
        shutdown(info)
