"""`pdiff diffuse`: train the prompt diffusion model on the training tasks, guided by the frozen Prompt-DT.

Each step draws `batch_size` prompt-sized segments of the training tasks (one random task per row) for
L_DM, samples prompts for their conditions through the differentiable reverse chain, and scores them by the
frozen Prompt-DT's action MSE on K-step contexts of the same tasks (L_PLM); the two gradients are combined
by `guidance` (default: the paper's projection). The Prompt-DT's weights are hashed before and after.

Under torchrun every rank draws the same batch and noise (same seed) and runs the cheap parts (L_DM, the
reverse chain) whole, while the frozen Prompt-DT, the expensive part, scores only the rank's share of the
contexts (`ShardedPLM`); gradients are averaged over ranks per loss before the guidance rule combines them.
The result is that of one process up to floating-point reduction order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pdiff.compute import ComputeConfig, setup_compute, use_precision
from pdiff.config import register_stage_config
from pdiff.console import StageProgress, log
from pdiff.data.loader import FamilyData, load_family_data
from pdiff.diffusion import Prediction, VPSchedule
from pdiff.distributed import (
    DistInfo,
    all_reduce_sum,
    average_gradients,
    broadcast,
    init_distributed,
    resolve_device,
    shutdown,
)
from pdiff.envs import get_family
from pdiff.errors import RunFailed, UsageError
from pdiff.eval.curve import TrainingTaskCurve
from pdiff.eval.rollout import FrozenPolicy, load_policy
from pdiff.methods.gradient_basis import DEFAULT_ENERGY, DEFAULT_MEMORY, DEFAULT_REFRESH_EVERY, GradientBasis
from pdiff.methods.guidance import GuidanceRule, GuidanceTrace
from pdiff.methods.prompt_diffuser import (
    SegmentCodec,
    SegmentSource,
    fixed_noise_prompts,
    freeze,
    guided_step,
    prompt_segments,
)
from pdiff.models.denoiser import Denoiser, DenoiserConfig
from pdiff.models.prompt_dt import Prompt, PromptDT
from pdiff.stages.common import checkpoint_of, open_run, record_trained, stage_run
from pdiff.training import EMA, CheckpointStore, check_finite, seed_everything
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run, latest_finished, require_finished

CURVE_KIND = "prompt-expert"  # the tails the learning curve's prompts are conditioned on


class DiffusionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: int = Field(
        5, ge=1, le=100, description="N: diffusion steps (small: L_PLM back-propagates through all)."
    )
    beta_min: float = Field(0.1, gt=0, description="VP schedule b_min.")
    beta_max: float = Field(10.0, gt=0, description="VP schedule b_max.")
    hidden: int = Field(256, ge=8, description="Denoiser MLP width.")
    layers: int = Field(3, ge=1, description="Denoiser hidden layers.")
    time_embed: int = Field(16, ge=2, description="Sinusoidal diffusion-step embedding size.")
    prediction: Prediction = Field(
        "x0",
        description="What the denoiser predicts: x0 (the prompt) or epsilon (the noise, DDPM's usual L_DM).",
    )


class GpmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    memory: int = Field(
        DEFAULT_MEMORY, ge=1, description="M: past denoising gradients whose span gpm projects out."
    )
    refresh_every: int = Field(
        DEFAULT_REFRESH_EVERY,
        ge=1,
        description="K: steps between recomputations of the basis (1: every step).",
    )
    energy: float = Field(
        DEFAULT_ENERGY,
        description="Share of the gradients' energy (squared singular values) the basis keeps, in (0, 1].",
    )

    @field_validator("energy")
    @classmethod
    def _energy_in_range(cls, energy: float) -> float:
        if not (math.isfinite(energy) and 0 < energy <= 1):
            raise ValueError("gpm energy must be in (0, 1]")
        return energy


class DiffuseConfig(ComputeConfig):
    OLDER: ClassVar[dict[str, Any]] = {
        "segment_source": "anywhere",
        "ema_decay": None,
        "curve_every": None,
        "curve_tasks": 5,
        "curve_episodes": 1,
        "gpm": {},  # read only with guidance gpm, which came later
        "threads": None,
        "precision": "fp32",
    }
    env: str | None = Field(None, description="Task family (default: that of the pretrain run).")
    pretrain_run: str | None = Field(
        None, description="Frozen Prompt-DT (default: latest finished pretrain)."
    )
    data_kind: str = Field("expert", description="Training-task data the prompt segments come from.")
    segment_source: SegmentSource = Field(
        "tail",
        description="Prompt segments the generator trains on: tail (steps T-6..T-2 of each episode, where the "
        "Prompt-DT reads its prompt) or anywhere (any 5-step window, with its own RTG and timesteps).",
    )
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="Exponential moving average of the denoiser's weights (none: off)."
    )
    guidance: GuidanceRule = Field(
        "project",
        description="How g_DM and g_PLM combine: project (rank 1), gpm (a basis of past g_DM, see gpm.*), sum, "
        "none (L_DM only), plm-only, pcgrad.",
    )
    lam: float = Field(1.0, ge=0, description="λ: weight of the (projected) PLM gradient (the paper: 1).")
    gpm: GpmSettings = Field(default_factory=GpmSettings, description="Basis of guidance gpm.")
    diffusion: DiffusionSettings = Field(
        default_factory=DiffusionSettings, description="Schedule and denoiser."
    )
    steps: int = Field(20_000, ge=1, description="Training steps.")
    batch_size: int = Field(64, ge=1, description="Prompt segments (and PLM contexts) per step.")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate.")
    grad_clip: float | None = Field(
        1.0, gt=0, description="Clip of the combined gradient's norm (none: off)."
    )
    seed: int = Field(0, ge=0, description="Seed.")
    log_every: int = Field(50, ge=1, description="Metrics row every this many steps.")
    checkpoint_every: int = Field(1000, ge=1, description="Resumable checkpoint every this many steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept.")
    curve_every: int | None = Field(
        None,
        ge=1,
        description="Every this many steps, generate prompts for `curve_tasks` training tasks (conditioned on "
        "their own prompt-expert tails, as at test time), roll the frozen Prompt-DT out with them and log "
        "train_task_return: the learning curve budgets are sized by (off: rollouts cost time).",
    )
    curve_tasks: int = Field(5, ge=1, description="Training tasks the learning curve rolls out.")
    curve_episodes: int = Field(1, ge=1, description="Episodes per task and curve point.")


register_stage_config("diffuse", DiffuseConfig)


def weights_sha256(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_codec(
    policy: FrozenPolicy, family_horizon: int, data: FamilyData, state_dim: int, act_dim: int
) -> SegmentCodec:
    rewards = data.rewards
    return SegmentCodec(state_dim=state_dim, act_dim=act_dim, prompt_len=policy.model.config.prompt_len,
                        reward_mean=float(rewards.mean()), reward_std=float(rewards.std() + 1e-6),
                        horizon=family_horizon)  # fmt: skip


def denoiser_payload(
    arch: DenoiserConfig, schedule: VPSchedule, codec: SegmentCodec, extra: dict[str, Any]
) -> dict[str, Any]:
    return {"model": "Denoiser", "architecture": arch.to_dict(),
            "schedule": {"steps": schedule.steps, "beta_min": schedule.beta_min, "beta_max": schedule.beta_max,
                         "prediction": schedule.prediction},
            "codec": codec.to_dict(), **extra}  # fmt: skip


class ShardedPLM(torch.nn.Module):
    """The frozen Prompt-DT computed on this rank's rows only, scaled so that the ranks' mean loss is the loss.

    Other rows return their target actions (zero error, no gradient); own rows return
    target + sqrt(W) * (prediction - target), so the masked MSE over all rows (whose count is global) is W
    times this rank's share, and the mean over W ranks is the single-process L_PLM.
    """

    def __init__(self, plm: PromptDT, info: DistInfo) -> None:
        super().__init__()
        self.plm, self.info = plm, info

    def forward(self, states, actions, returns_to_go, timesteps, mask, prompt: Prompt):  # noqa: ANN001, ANN201
        rows = torch.arange(states.shape[0], device=states.device)[self.info.shard(states.shape[0])]
        prompt_rows = rows if prompt.rows is None else prompt.rows[rows]
        local = self.plm(states[rows], actions[rows], returns_to_go[rows], timesteps[rows], mask[rows],
                         replace(prompt, rows=prompt_rows))  # fmt: skip
        out = actions.detach().clone()
        out[rows] = actions[rows] + self.info.world_size**0.5 * (local - actions[rows])
        return out


def train_denoiser(
    run: Run | None, run_dir: Path, workspace: Workspace, config: DiffuseConfig, source: Run, info: DistInfo
) -> dict[str, Any]:
    family = get_family(config.env or "")
    compute = setup_compute(config, workspace.root, run.manifest.get("compute") if run else None, info)
    if run is not None:
        run.manifest["compute"] = compute.record()
    device = compute.torch_device
    policy, plm_config = load_policy(checkpoint_of(source), device)
    plm = freeze(use_precision(policy.model, compute))
    scorer = ShardedPLM(plm, info) if info.enabled else plm
    before = weights_sha256(plm)
    tasks = list(plm_config["train_tasks"])
    data = load_family_data(workspace.datasets_dir, family.name, config.data_kind, tasks)
    # the learning curve's conditions: tails of the same training tasks' prompt-expert episodes
    curve_data = None
    if config.curve_every and info.is_main:
        curve_data = load_family_data(workspace.datasets_dir, family.name, CURVE_KIND, tasks)
    if run is not None:  # what the generator saw: the Prompt-DT's training tasks only (checked by tests)
        read = [data] if curve_data is None else [data, curve_data]
        run.record_inputs("dataset", [(i, h) for d in read for i, h in zip(d.dataset_ids, d.content_sha256, strict=True)])  # fmt: skip
    sampler, tails = policy.segment_sampler(data), policy.prompt_bank(data)
    codec = build_codec(policy, family.horizon, data, family.obs_dim, family.act_dim)
    d = config.diffusion
    schedule = VPSchedule(steps=d.steps, beta_min=d.beta_min, beta_max=d.beta_max, prediction=d.prediction)
    arch = DenoiserConfig(x_dim=codec.x_dim, cond_dim=codec.cond_dim, hidden=d.hidden, layers=d.layers,
                          time_embed=d.time_embed)  # fmt: skip
    seed_everything(config.seed)
    denoiser = use_precision(Denoiser(arch).to(device), compute)
    average_gradients(denoiser, info)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.lr)
    ema = EMA(denoiser, config.ema_decay) if config.ema_decay else None
    rng = np.random.default_rng(config.seed)
    store = CheckpointStore(run_dir / "checkpoints", keep=config.keep_checkpoints)
    step = store.restore(denoiser, optimizer, None, rng, ema=ema)
    if step:
        log.info("resumed from step %d", step)
    # gpm's memory of past gradients and every step's share removed resume with the weights
    basis = GradientBasis(**config.gpm.model_dump()) if config.guidance == "gpm" else None
    if basis is not None and "gpm" in store.restored_extra:
        basis.load_state_dict(store.restored_extra["gpm"], device)
    trace = GuidanceTrace()
    trace.load_state_dict(store.restored_extra.get("guidance_trace", {}))
    payload = denoiser_payload(arch, schedule, codec, {"family": family.name, "pretrain_run": source.run_id,
                                                       "guidance": config.guidance, "lam": config.lam,
                                                       "gpm": config.gpm.model_dump(),
                                                       "segment_source": config.segment_source})  # fmt: skip
    final = store.restored_extra  # the losses of the step checkpointed last, for a resume past the end
    curve = None
    if curve_data is not None:  # read through the weights a checkpoint saves (the averaged ones with an EMA)
        curve = TrainingTaskCurve.build(family, policy.prompt_bank(curve_data), tasks, config.curve_tasks,
                                        config.curve_episodes, config.seed)  # fmt: skip
        generated = fixed_noise_prompts(ema.module if ema is not None else denoiser, schedule, codec, device,
                                        config.seed)  # fmt: skip
    with StageProgress(
        f"diffuse {family.name} ({config.guidance})", total=config.steps, completed=step
    ) as bar:
        while step < config.steps:
            rows = rng.choice(tasks, size=config.batch_size)
            segments = prompt_segments(config.segment_source, sampler, tails, rng, rows, codec.prompt_len)
            contexts = sampler.sample(rng, rows, 1)
            losses = guided_step(denoiser, schedule, scorer, codec, segments, contexts, optimizer, rule=config.guidance,
                                 lam=config.lam, grad_clip=config.grad_clip, device=device, basis=basis)  # fmt: skip
            if ema is not None:
                ema.update(denoiser, step + 1)
            if info.enabled and losses.loss_plm is not None:  # each rank holds its scaled share
                losses = replace(losses, loss_plm=all_reduce_sum(losses.loss_plm, info) / info.world_size)
            loss_dm = (
                None if config.guidance == "plm-only" else losses.loss_dm
            )  # NaN stands for "not computed"
            check_finite("diffuse", step + 1, {"loss_dm": loss_dm, "loss_plm": losses.loss_plm}, store)
            step += 1
            if not info.is_main:
                continue
            trace.add(losses.gradient)
            row = {"loss_dm": losses.loss_dm, "loss_plm": losses.loss_plm, "cosine": losses.gradient.cosine,
                   "removed_share": losses.gradient.removed_share}  # fmt: skip
            if basis is not None:
                row["basis_rank"] = losses.gradient.basis_rank
            bar.update(1, **{k: v for k, v in row.items() if v is not None and not np.isnan(v)})
            if run is not None and (step % config.log_every == 0 or step == config.steps):
                run.log_metrics({"step": step, "phase": "train", **row, "norm_dm": losses.gradient.norm_dm,
                                 "norm_plm": losses.gradient.norm_plm})  # fmt: skip
            if (
                curve is not None
                and run is not None
                and (step % config.curve_every == 0 or step == config.steps)
            ):
                run.log_metrics({"step": step, "phase": "curve", **curve.measure(policy, generated)})
            if step % config.checkpoint_every == 0 or step == config.steps:
                final = {"loss_dm": losses.loss_dm, "loss_plm": losses.loss_plm,
                         "guidance_trace": trace.state_dict()}  # fmt: skip
                if basis is not None:
                    final["gpm"] = basis.state_dict()
                store.save(step, denoiser, payload, optimizer, None, rng, extra=final, ema=ema)
    after = weights_sha256(plm)
    if after != before:
        raise RunFailed(
            "the frozen Prompt-DT's weights changed during diffusion training", hint="report this bug"
        )
    return {"steps": step, "final_loss_dm": final.get("loss_dm"), "final_loss_plm": final.get("loss_plm"),
            "plm_sha256": before, **trace.summary(),
            "checkpoint": str(Path(store.latest_dir()).relative_to(run_dir)) if info.is_main else None}  # fmt: skip


def resolve_pretrain(workspace: Workspace, config: DiffuseConfig) -> Run:
    if config.pretrain_run:
        return require_finished(find_run(workspace, config.pretrain_run, "pretrain"))
    if config.env is None:
        raise UsageError(
            "no Prompt-DT to guide the diffusion model", hint="pass --env FAMILY or --pretrain RUN"
        )
    return require_finished(latest_finished(workspace, "pretrain", get_family(config.env).name))


def run_diffuse(
    workspace: Workspace, config: DiffuseConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run | None, dict[str, Any]]:
    """The stage. Under torchrun, rank 0 owns the run directory and every rank scores its share of contexts."""
    info = init_distributed(resolve_device(config.device))
    try:
        if not info.is_main:
            run_dir, payload = broadcast(None, info)
            config = DiffuseConfig.model_validate(payload)
            source = resolve_pretrain(workspace, config)
            return None, train_denoiser(None, Path(run_dir), workspace, config, source, info)
        if resume is None:
            source = resolve_pretrain(workspace, config)
            config = config.model_copy(update={"env": source.family, "pretrain_run": source.run_id})
        run, config = open_run(
            workspace, "diffuse", config, argv=argv, family=config.env, seed=config.seed, resume=resume
        )
        source = resolve_pretrain(workspace, config)
        broadcast((str(run.dir), config.model_dump(mode="json")), info)
        with stage_run(run):
            run.record_input("pretrain", source.run_id, None)
            summary = train_denoiser(run, run.dir, workspace, config, source, info)
            curves = ["loss_dm", "loss_plm", "cosine", "removed_share", "train_task_return"]
            curves.append("train_task_success")
            record_trained(
                run, run.dir / summary["checkpoint"], curves, f"diffuse {config.env} ({config.guidance})"
            )
            run.manifest["summary"].update(summary)
            run.save()
        return run, summary
    finally:
        shutdown(info)
