"""Prompt Diffuser (Hu et al., arXiv 2411.01168): a conditional diffusion model generates the prompt.

Our reading of the method (docs/method.md; every open choice is a config field):
- x0 = a 5-step segment's (state, action, reward), flattened: states in the frozen Prompt-DT's normalised
  space (so generated states feed it directly), actions as they are in [−1, 1], rewards standardised.
- condition y = the segment's returns-to-go / RTG scale and timesteps / horizon (10 numbers).
- L_DM = ε-prediction MSE; L_PLM = the frozen Prompt-DT's action MSE on K-step contexts of the same task,
  given the prompt sampled through the differentiable reverse chain; combined by gradient projection
  g = g_DM + λ·(g_PLM − (g_PLM·û)û) (or the ablation rule chosen, or gpm's multi-vector projection).
- `diffuse` trains on the training tasks; `tune` fine-tunes a copy on each test task's few-shot episodes
  with the same loss, then generates the task's prompt conditioned on a few-shot tail segment's (rtg, t).
  Zero-shot (`--shots 0`, pdiff.methods.zero_shot): `nearest` tunes the same way on the nearest training
  task's episodes; under `none` nothing is fine-tuned and the trained model is conditioned on the mean
  (rtg, t) of the training tasks' tails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from pdiff.compute import Compute, use_precision
from pdiff.console import StageProgress, log
from pdiff.data.batches import PromptBank, Segments, SegmentSampler
from pdiff.data.loader import FamilyData
from pdiff.diffusion import VPSchedule, denoising_loss, sample
from pdiff.distributed import DistInfo, all_reduce_sum, average_gradients
from pdiff.envs.base import TaskFamily
from pdiff.errors import RunFailed
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.diffusion_settings import DenoiserTraining, SegmentSource, Tuning, denoiser_payload
from pdiff.methods.gradient_basis import GradientBasis
from pdiff.methods.guidance import (
    CombinedGradient,
    GuidanceRule,
    GuidanceTrace,
    combine_gradients,
    rules_text,
)
from pdiff.methods.options import MethodOptions
from pdiff.methods.segment_codec import SegmentCodec, build_codec
from pdiff.models.checkpoint import save_weights, weights_sha256
from pdiff.models.denoiser import Denoiser
from pdiff.models.prompt_dt import PromptDT, action_loss
from pdiff.models.sharded_plm import ShardedPLM
from pdiff.rollouts.curve import TrainingTaskCurve
from pdiff.rollouts.rollout import FrozenPolicy
from pdiff.training.state import EMA, CheckpointStore, check_finite, seed_everything

DEFAULT_LR = 1e-4  # [ours]: the paper gives no fine-tuning rate


class Options(MethodOptions):
    """How `tune` adapts the trained diffusion model; unset ones take the diffusion run's values
    (pdiff.methods.diffusion_settings.load_tuning)."""

    adapt: Literal["finetune", "condition-only"] = Field(
        "finetune", description="Fine-tune on the few-shot data, or only condition on it."
    )
    guidance: GuidanceRule | None = Field(
        None,
        description=f"Guidance rule while tuning: {rules_text()} (default: the diffuse run's; gpm with its "
        "basis settings).",
    )
    segment_source: SegmentSource | None = Field(
        None, description="Few-shot prompt segments tuned on (default: the diffuse run's)."
    )
    lam: float | None = Field(None, ge=0, description="λ while tuning (default: the diffuse run's).")

    def trains(self) -> bool:
        return self.adapt == "finetune"


@dataclass
class StepLosses:
    loss_dm: float
    loss_plm: float | None
    gradient: CombinedGradient


def guided_step(
    denoiser: Denoiser,
    schedule: VPSchedule,
    plm: PromptDT,
    codec: SegmentCodec,
    prompt_segments: Segments,
    contexts: Segments,
    optimizer: torch.optim.Optimizer,
    *,
    rule: str,
    lam: float,
    grad_clip: float | None,
    device: torch.device,
    basis: GradientBasis | None = None,
) -> StepLosses:
    """One update of the denoiser: L_DM on `prompt_segments`; L_PLM of the frozen PLM on `contexts` (row b of
    contexts belongs to the task of prompt row b) given prompts sampled through the differentiable chain.
    `basis`: gpm's state, needed with rule "gpm"."""
    x0, cond = codec.encode(prompt_segments, device)
    loss_dm = denoising_loss(denoiser, schedule, x0, cond) if rule != "plm-only" else None
    loss_plm = None
    if rule != "none":
        x_hat = sample(denoiser, schedule, cond, x0.shape, clip=codec.bounds(device), grad=True)
        prompt = codec.to_prompt(x_hat, prompt_segments)
        batch = contexts.to_torch(device)
        pred = plm(
            batch["states"],
            batch["actions"],
            batch["returns_to_go"],
            batch["timesteps"],
            batch["mask"],
            prompt,
        )
        loss_plm = action_loss(pred, batch["actions"], batch["mask"])
    optimizer.zero_grad(set_to_none=True)
    params = [p for p in denoiser.parameters() if p.requires_grad]
    gradient = combine_gradients(params, loss_dm, loss_plm, rule=rule, lam=lam, basis=basis)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return StepLosses(
        float(loss_dm.detach()) if loss_dm is not None else float("nan"),
        float(loss_plm.detach()) if loss_plm is not None else None,
        gradient,
    )


def prompt_segments(
    source: str,
    sampler: SegmentSampler,
    tails: PromptBank,
    rng: np.random.Generator,
    tasks: np.ndarray,
    length: int,
) -> Segments:
    """The prompt segments the generator trains on, one per row of `tasks`: `tail` draws a tail prompt of one
    of the task's episodes (where the Prompt-DT reads its prompt), `anywhere` a window at any position."""
    if source == "tail":
        return tails.sample(rng, np.asarray(tasks))
    return sampler.sample_whole(rng, tasks, 1, length)


def freeze(plm: PromptDT) -> PromptDT:
    """The PLM is never trained here: eval mode (no dropout) and no gradients into its weights."""
    plm.eval()
    for parameter in plm.parameters():
        parameter.requires_grad_(False)
    return plm


@torch.no_grad()
def generate_prompts(
    denoiser: Denoiser,
    schedule: VPSchedule,
    codec: SegmentCodec,
    conditions: Segments,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Segments:
    """One generated prompt per conditioning segment, as normalised Segments (ready for the PLM), sampled in
    eval mode (the denoiser is left in the mode it was in); the noise comes from `generator` when given
    (else from torch's global generator)."""
    training = denoiser.training
    denoiser.eval()
    try:
        _, cond = codec.encode(conditions, device)
        shape = (len(conditions), codec.x_dim)
        x_hat = sample(
            denoiser, schedule, cond, shape, generator=generator, clip=codec.bounds(device), grad=False
        )
    finally:
        denoiser.train(training)
    return codec.to_segments(x_hat, conditions)


def fixed_noise_prompts(
    denoiser: Denoiser, schedule: VPSchedule, codec: SegmentCodec, device: torch.device, seed: int
) -> Callable[[Segments], Segments]:
    """Conditions → prompts generated by `denoiser` as it is at the call, from the same noise at every call
    (a CPU generator seeded with `seed`: torch's global one, which training draws from, is left alone)."""
    return lambda conditions: generate_prompts(
        denoiser, schedule, codec, conditions, device, torch.Generator().manual_seed(seed)
    )


def train_denoiser(
    settings: DenoiserTraining,
    policy: FrozenPolicy,
    data: FamilyData,
    tasks: list[int],
    family: TaskFamily,
    compute: Compute,
    store: CheckpointStore,
    info: DistInfo,
    *,
    pretrain_run: str,
    log_metrics: Callable[[dict[str, Any]], None] | None = None,
    curve_data: FamilyData | None = None,
) -> dict[str, Any]:
    """Train a denoiser on `data` (the episodes of `tasks`, the Prompt-DT's training tasks) guided by
    `policy`'s frozen Prompt-DT, resuming from `store`'s newest checkpoint, whose payload names
    `pretrain_run`. Rank 0 logs to `log_metrics`; `curve_data`: prompt-expert episodes of `tasks` whose tails
    condition the learning curve's prompts (None: no curve).

    Under torchrun every rank draws the same batch and noise (same seed) and runs the cheap parts (L_DM, the
    reverse chain) whole, while the frozen Prompt-DT, the expensive part, scores only the rank's share of the
    contexts (`ShardedPLM`); gradients are averaged over ranks per loss before the guidance rule combines
    them. The result is that of one process up to floating-point reduction order."""
    device = compute.torch_device
    plm = freeze(use_precision(policy.model, compute))
    scorer = ShardedPLM(plm, info) if info.enabled else plm
    before = weights_sha256(plm)
    sampler, tails = policy.segment_sampler(data), policy.prompt_bank(data)
    codec = build_codec(data, plm.config.prompt_len, family.horizon, family.obs_dim, family.act_dim)
    schedule, arch = settings.diffusion.schedule(), settings.diffusion.denoiser_config(codec)
    seed_everything(settings.seed)
    denoiser = use_precision(Denoiser(arch).to(device), compute)
    average_gradients(denoiser, info)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=settings.lr)
    ema = EMA(denoiser, settings.ema_decay) if settings.ema_decay else None
    rng = np.random.default_rng(settings.seed)
    step = store.restore(denoiser, optimizer, None, rng, ema=ema)
    if step:
        log.info("resumed from step %d", step)
    # gpm's memory of past gradients and every step's share removed resume with the weights
    basis = GradientBasis(**settings.gpm.model_dump()) if settings.guidance == "gpm" else None
    if basis is not None and "gpm" in store.restored_extra:
        basis.load_state_dict(store.restored_extra["gpm"], device)
    trace = GuidanceTrace()
    trace.load_state_dict(store.restored_extra.get("guidance_trace", {}))
    payload = denoiser_payload(settings, arch, schedule, codec, family=family.name, pretrain_run=pretrain_run)
    final = store.restored_extra  # the losses of the step checkpointed last, for a resume past the end
    curve = None
    if curve_data is not None:  # read through the weights a checkpoint saves (the averaged ones with an EMA)
        curve = TrainingTaskCurve.build(
            family,
            policy.prompt_bank(curve_data),
            tasks,
            settings.curve_tasks,
            settings.curve_episodes,
            settings.seed,
        )
        generated = fixed_noise_prompts(
            ema.module if ema is not None else denoiser, schedule, codec, device, settings.seed
        )
    guidance = {
        "rule": settings.guidance,
        "lam": settings.lam,
        "grad_clip": settings.grad_clip,
        "device": device,
        "basis": basis,
    }
    with StageProgress(
        f"diffuse {family.name} ({settings.guidance})", total=settings.steps, completed=step
    ) as bar:
        while step < settings.steps:
            rows = rng.choice(tasks, size=settings.batch_size)
            segments = prompt_segments(settings.segment_source, sampler, tails, rng, rows, codec.prompt_len)
            contexts = sampler.sample(rng, rows, 1)
            losses = guided_step(denoiser, schedule, scorer, codec, segments, contexts, optimizer, **guidance)
            if ema is not None:
                ema.update(denoiser, step + 1)
            if info.enabled and losses.loss_plm is not None:  # each rank holds its scaled share
                losses = replace(losses, loss_plm=all_reduce_sum(losses.loss_plm, info) / info.world_size)
            # plm-only's loss_dm is a NaN that stands for "not computed"
            loss_dm = None if settings.guidance == "plm-only" else losses.loss_dm
            check_finite("diffuse", step + 1, {"loss_dm": loss_dm, "loss_plm": losses.loss_plm}, store)
            step += 1
            if not info.is_main:
                continue
            trace.add(losses.gradient)
            gradient = losses.gradient
            row = {
                "loss_dm": losses.loss_dm,
                "loss_plm": losses.loss_plm,
                "cosine": gradient.cosine,
                "removed_share": gradient.removed_share,
            }
            if basis is not None:
                row["basis_rank"] = gradient.basis_rank
            bar.update(1, **{k: v for k, v in row.items() if v is not None and not np.isnan(v)})
            last = step == settings.steps
            if log_metrics is not None and (step % settings.log_every == 0 or last):
                norms = {"norm_dm": gradient.norm_dm, "norm_plm": gradient.norm_plm}
                log_metrics({"step": step, "phase": "train", **row, **norms})
            if curve is not None and log_metrics is not None and (step % settings.curve_every == 0 or last):
                log_metrics({"step": step, "phase": "curve", **curve.measure(policy, generated)})
            if step % settings.checkpoint_every == 0 or last:
                final = {
                    "loss_dm": losses.loss_dm,
                    "loss_plm": losses.loss_plm,
                    "guidance_trace": trace.state_dict(),
                }
                if basis is not None:
                    final["gpm"] = basis.state_dict()
                store.save(step, denoiser, payload, optimizer, None, rng, extra=final, ema=ema)
    if weights_sha256(plm) != before:
        raise RunFailed(
            "the frozen Prompt-DT's weights changed during diffusion training", hint="report this bug"
        )
    return {
        "steps": step,
        "final_loss_dm": None if settings.guidance == "plm-only" else final.get("loss_dm"),  # not NaN in JSON
        "final_loss_plm": final.get("loss_plm"),
        "plm_sha256": before,
        **trace.summary(),
        "checkpoint": store.latest_dir() if info.is_main else None,
    }


def trial_result(
    context: TaskContext, denoiser: Denoiser, schedule: VPSchedule, codec: SegmentCodec
) -> TaskResult:
    """A selection trial's view of the denoiser as it stands: its prompt for one few-shot tail's condition
    from one noise draw, the same at every score, so that the trial's held-out curve follows the training
    alone."""
    fixed = np.random.default_rng([context.seed, context.task])
    condition = context.fewshot_prompts.for_task(context.task, fixed)
    generate = fixed_noise_prompts(denoiser, schedule, codec, context.device, context.torch_seed)
    return TaskResult(prompt=generate(condition), tunable_parameters=0)


def tune_task(context: TaskContext) -> TaskResult:
    """Fine-tune a copy of the trained denoiser on the task's few-shot data, then generate its prompt
    (zero-shot `none`: generate it with the trained denoiser as it is)."""
    settings, tuning = context.settings, context.options(Tuning)
    denoiser = tuning.denoiser_factory()
    schedule, codec = tuning.schedule, tuning.codec
    torch.manual_seed(context.torch_seed)
    if context.zero_shot is not None:  # nothing is tuned
        condition = context.zero_shot.condition(context.task, context.rng)
        prompt = generate_prompts(denoiser, schedule, codec, condition, context.device)
        return TaskResult(prompt=prompt, tunable_parameters=0)
    assert context.fewshot is not None and context.fewshot_prompts is not None
    plm = freeze(context.policy.model)
    metrics: dict[str, float] = {}
    if tuning.adapt == "finetune" and settings.steps > 0:
        optimizer = torch.optim.Adam(denoiser.parameters(), lr=settings.lr)
        tasks = [context.task] * settings.batch_size
        # gpm starts each tuning from an empty memory: the basis is of this task's denoising gradients
        basis = GradientBasis(**tuning.gpm) if tuning.guidance == "gpm" else None
        for step in range(1, settings.steps + 1):
            segments = prompt_segments(
                tuning.segment_source,
                context.fewshot,
                context.fewshot_prompts,
                context.rng,
                np.array(tasks),
                codec.prompt_len,
            )
            contexts = context.fewshot.sample(context.rng, tasks, 1)
            losses = guided_step(
                denoiser,
                schedule,
                plm,
                codec,
                segments,
                contexts,
                optimizer,
                rule=tuning.guidance,
                lam=tuning.lam,
                grad_clip=settings.grad_clip,
                device=context.device,
                basis=basis,
            )
            loss_dm = None if tuning.guidance == "plm-only" else losses.loss_dm  # NaN: not computed
            check_finite(
                "tune",
                step,
                {"loss_dm": loss_dm, "loss_plm": losses.loss_plm},
                where=f"seed {context.seed}, task {context.task}",
            )
            if context.stop_after(step, lambda: trial_result(context, denoiser, schedule, codec)):
                break
        loss_plm = float("nan") if losses.loss_plm is None else losses.loss_plm  # None: not computed (none)
        metrics = {"loss_dm": losses.loss_dm, "loss_plm": loss_plm}
        save_weights(
            denoiser, context.out_dir / f"seed-{context.seed}" / f"task-{context.task:02d}.safetensors"
        )
    # Algorithm 1's y: the (rtg, t) of a random few-shot trajectory's tail segment (docs/method.md); where
    # resets do not vary, one prompt per few-shot episode, each conditioned on that episode's tail
    condition = context.fewshot_tails()
    prompt = generate_prompts(denoiser, schedule, codec, condition, context.device)
    # How far the generated states are from the real few-shot prompt they were conditioned on (RMS in the
    # Prompt-DT's normalised state units): compare with the distance between real prompts of different tasks.
    metrics["prompt_state_rms"] = float(np.sqrt(np.mean((prompt.states - condition.states) ** 2)))
    trainable = sum(p.numel() for p in denoiser.parameters()) if tuning.adapt == "finetune" else 0
    return TaskResult(prompt=prompt, tunable_parameters=trainable, metrics=metrics)
