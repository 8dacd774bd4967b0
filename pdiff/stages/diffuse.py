"""`pdiff diffuse`: train Prompt Diffuser's prompt generator on the training tasks, guided by the frozen
Prompt-DT (the loop: pdiff.methods.prompt_diffuser.train_denoiser). Under torchrun, rank 0 owns the run
directory and every rank scores its share of the contexts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from pdiff.compute import ComputeConfig
from pdiff.config import register_stage_config
from pdiff.data.loader import load_family_data
from pdiff.distributed import DistInfo
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.methods.diffusion_settings import DiffusionSettings, SegmentSource
from pdiff.methods.gradient_basis import GpmSettings
from pdiff.methods.guidance import GuidanceRule
from pdiff.methods.prompt_diffuser import train_denoiser
from pdiff.rollouts.rollout import load_policy
from pdiff.stages.common import (
    checkpoint_of,
    distributed_run,
    open_run,
    record_datasets,
    record_trained,
    run_compute,
    stage_run,
)
from pdiff.training.state import CheckpointStore
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run, latest_finished, require_finished

CURVE_KIND = "prompt-expert"  # the tails the learning curve's prompts are conditioned on


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
        description="Prompt segments the generator trains on: tail (steps T-6..T-2 of each episode, where "
        "the Prompt-DT reads its prompt) or anywhere (any 5-step window, with its own RTG and timesteps).",
    )
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="Exponential moving average of the denoiser's weights (none: off)."
    )
    guidance: GuidanceRule = Field(
        "project",
        description="How g_DM and g_PLM combine: project (rank 1), gpm (a basis of past g_DM, see gpm.*), "
        "sum, none (L_DM only), plm-only, pcgrad.",
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
        description="Every this many steps, generate prompts for `curve_tasks` training tasks (conditioned "
        "on their own prompt-expert tails, as at test time), roll the frozen Prompt-DT out with them and log "
        "train_task_return: the learning curve budgets are sized by (off: rollouts cost time).",
    )
    curve_tasks: int = Field(5, ge=1, description="Training tasks the learning curve rolls out.")
    curve_episodes: int = Field(1, ge=1, description="Episodes per task and curve point.")


register_stage_config("diffuse", DiffuseConfig)


def train(
    run: Run | None, run_dir: Path, workspace: Workspace, config: DiffuseConfig, source: Run, info: DistInfo
) -> dict[str, Any]:
    """Train in `run_dir` (rank 0: `run`, the others None), recording compute and datasets in the run."""
    family = get_family(config.env or "")
    compute = run_compute(config, workspace, run, info)
    policy, plm_config = load_policy(checkpoint_of(source), compute.torch_device)
    tasks = list(plm_config["train_tasks"])
    data = load_family_data(workspace.datasets_dir, family.name, config.data_kind, tasks)
    # the learning curve's conditions: tails of the same training tasks' prompt-expert episodes
    curve_data = None
    if config.curve_every and info.is_main:
        curve_data = load_family_data(workspace.datasets_dir, family.name, CURVE_KIND, tasks)
    # what the generator saw: the Prompt-DT's training tasks only (checked by tests)
    record_datasets(run, *([data] if curve_data is None else [data, curve_data]))
    store = CheckpointStore(run_dir / "checkpoints", keep=config.keep_checkpoints)
    summary = train_denoiser(
        config,
        policy,
        data,
        tasks,
        family,
        compute,
        store,
        info,
        pretrain_run=source.run_id,
        log_metrics=run.log_metrics if run is not None else None,
        curve_data=curve_data,
    )
    if summary["checkpoint"] is not None:
        summary["checkpoint"] = str(Path(summary["checkpoint"]).relative_to(run_dir))
    return summary


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
    """The stage. Under torchrun, rank 0 owns the run directory and every rank scores its share of
    contexts."""

    def open_diffuse(config: DiffuseConfig) -> tuple[Run, DiffuseConfig]:
        if resume is None:
            source = resolve_pretrain(workspace, config)
            config = config.model_copy(update={"env": source.family, "pretrain_run": source.run_id})
        return open_run(
            workspace, "diffuse", config, argv=argv, family=config.env, seed=config.seed, resume=resume
        )

    with distributed_run(config, open_diffuse) as ranks:
        run, config = ranks.run, ranks.config
        if run is None:
            source = resolve_pretrain(workspace, config)
            return None, train(None, ranks.dir, workspace, config, source, ranks.info)
        with stage_run(run):  # a Prompt-DT gone since the run opened (a resume) fails the run
            source = resolve_pretrain(workspace, config)
            run.record_input("pretrain", source.run_id, None)
            summary = train(run, run.dir, workspace, config, source, ranks.info)
            curves = ["loss_dm", "loss_plm", "cosine", "removed_share", "train_task_return"]
            curves.append("train_task_success")
            record_trained(
                run, run.dir / summary["checkpoint"], curves, f"diffuse {config.env} ({config.guidance})"
            )
            run.manifest["summary"].update(summary)
            run.save()
        return run, summary
