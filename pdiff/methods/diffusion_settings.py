"""What a Prompt Diffuser diffusion run is set up with, what its checkpoint records besides the weights
(model_config.json), and `load_tuning`, which reads that checkpoint back for `tune`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pdiff.compute import Compute, use_precision
from pdiff.diffusion import Prediction, VPSchedule
from pdiff.methods.gradient_basis import GpmSettings
from pdiff.methods.guidance import GuidanceRule
from pdiff.methods.segment_codec import SegmentCodec
from pdiff.models.checkpoint import load_inference
from pdiff.models.denoiser import Denoiser, DenoiserConfig

SegmentSource = Literal["tail", "anywhere"]


class DiffusionSettings(BaseModel):
    """The noise schedule and the denoiser network, as the diffuse stage's `diffusion` section sets them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: int = Field(
        5, ge=1, le=100, description="N: diffusion steps (small: L_PLM back-propagates through all)."
    )
    beta_min: float = Field(0.1, gt=0, description="VP schedule b_min.")
    beta_max: float = Field(10.0, gt=0, description="VP schedule b_max.")
    hidden: int = Field(256, ge=8, description="Denoiser MLP width.")
    layers: int = Field(3, ge=1, description="Denoiser hidden layers.")
    time_embed: int = Field(
        16, ge=4, multiple_of=2, description="Sinusoidal diffusion-step embedding size (even, at least 4)."
    )
    prediction: Prediction = Field(
        "x0",
        description="What the denoiser predicts: x0 (the prompt) or epsilon (the noise, DDPM's usual L_DM).",
    )

    def schedule(self) -> VPSchedule:
        return VPSchedule(
            steps=self.steps, beta_min=self.beta_min, beta_max=self.beta_max, prediction=self.prediction
        )

    def denoiser_config(self, codec: SegmentCodec) -> DenoiserConfig:
        """The network for prompts encoded by `codec`."""
        return DenoiserConfig(
            x_dim=codec.x_dim,
            cond_dim=codec.cond_dim,
            hidden=self.hidden,
            layers=self.layers,
            time_embed=self.time_embed,
        )


class DenoiserTraining(Protocol):
    """What train_denoiser reads of its settings: the diffuse stage's config (pdiff.stages.diffuse), which
    describes each of them."""

    segment_source: SegmentSource
    ema_decay: float | None
    guidance: GuidanceRule
    lam: float
    gpm: GpmSettings
    diffusion: DiffusionSettings
    steps: int
    batch_size: int
    lr: float
    grad_clip: float | None
    seed: int
    log_every: int
    checkpoint_every: int
    curve_every: int | None
    curve_tasks: int
    curve_episodes: int


def denoiser_payload(
    settings: DenoiserTraining,
    arch: DenoiserConfig,
    schedule: VPSchedule,
    codec: SegmentCodec,
    *,
    family: str,
    pretrain_run: str,
) -> dict[str, Any]:
    """model_config.json of a denoiser checkpoint: what load_tuning rebuilds the denoiser from, the guidance
    tune defaults to, and where the model comes from."""
    schedule_settings = {
        "steps": schedule.steps,
        "beta_min": schedule.beta_min,
        "beta_max": schedule.beta_max,
        "prediction": schedule.prediction,
    }
    return {
        "model": "Denoiser",
        "architecture": arch.to_dict(),
        "schedule": schedule_settings,
        "codec": codec.to_dict(),
        "family": family,
        "pretrain_run": pretrain_run,
        "guidance": settings.guidance,
        "lam": settings.lam,
        "gpm": settings.gpm.model_dump(),
        "segment_source": settings.segment_source,
    }


class TuneOptions(Protocol):
    """What load_tuning reads of prompt-diffuser's tune options (pdiff.methods.prompt_diffuser.Options, which
    describes each of them); None takes the diffusion run's value."""

    adapt: str
    guidance: GuidanceRule | None
    segment_source: SegmentSource | None
    lam: float | None


@dataclass(frozen=True)
class Tuning:
    """What tune_task reads: the trained diffusion model and the options resolved against its run."""

    denoiser_factory: Callable[[], Denoiser]  # a fresh copy of the trained denoiser for each (seed, task)
    schedule: VPSchedule
    codec: SegmentCodec
    adapt: str
    guidance: str
    segment_source: str
    lam: float
    gpm: dict[str, Any]  # gpm's basis settings, from the diffusion run


def load_tuning(options: TuneOptions, checkpoint: Path, compute: Compute) -> Tuning:
    """The diffusion model of `checkpoint` on `compute`'s device and precision, with `options` resolved."""

    def build(payload: dict[str, Any]) -> Denoiser:
        return Denoiser(DenoiserConfig.from_dict(payload["architecture"]))

    trained, payload = load_inference(checkpoint, build)
    use_precision(trained.to(compute.torch_device), compute)
    return Tuning(
        denoiser_factory=lambda: copy.deepcopy(trained),
        schedule=VPSchedule(**payload["schedule"]),
        codec=SegmentCodec(**payload["codec"]),
        adapt=options.adapt,
        guidance=options.guidance or payload["guidance"],
        # runs made before the setting existed trained on windows anywhere in an episode
        segment_source=options.segment_source or payload.get("segment_source", "anywhere"),
        lam=options.lam if options.lam is not None else payload["lam"],
        gpm=payload.get("gpm", {}),  # diffusion runs made before gpm existed: its defaults
    )
