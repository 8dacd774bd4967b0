"""`pdiff pretrain`: a Prompt-DT trained on the training tasks of a family (the loop and its recipe:
pdiff.training.pretraining). Under torchrun, rank 0 owns the run directory and every rank trains its batch
slice."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from pdiff.compute import ComputeConfig
from pdiff.config import register_stage_config
from pdiff.distributed import DistInfo
from pdiff.envs import get_family
from pdiff.rollouts.curve import TrainingTaskCurve
from pdiff.rollouts.rollout import FrozenPolicy
from pdiff.stages.common import (
    distributed_run,
    open_run,
    record_datasets,
    record_trained,
    run_compute,
    stage_run,
)
from pdiff.training.pretraining import (
    ModelSettings,
    load_pretraining_data,
    prepare_pretraining,
    pretrain_prompt_dt,
)
from pdiff.training.state import CheckpointStore
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run


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
        description="Every this many steps, roll the model out on `curve_tasks` training tasks with their "
        "own prompts and log train_task_return: the learning curve budgets are sized by "
        "(off: rollouts cost time).",
    )
    curve_tasks: int = Field(5, ge=1, description="Training tasks the learning curve rolls out.")
    curve_episodes: int = Field(1, ge=1, description="Episodes per task and curve point.")


register_stage_config("pretrain", PretrainConfig)


def train(
    run: Run | None, run_dir: Path, workspace: Workspace, config: PretrainConfig, info: DistInfo
) -> dict[str, Any]:
    """Pretrain in `run_dir` (rank 0: `run`, the others None), recording compute and datasets in the run."""
    family = get_family(config.env)
    compute = run_compute(config, workspace, run, info)
    data, prompts = load_pretraining_data(workspace.datasets_dir, family, config)
    record_datasets(run, data, prompts)
    pretraining = prepare_pretraining(config, family, data, prompts, compute)
    measure_curve = None
    if config.curve_every and info.is_main:
        curve = TrainingTaskCurve.build(
            family,
            pretraining.bank,
            pretraining.tasks,
            config.curve_tasks,
            config.curve_episodes,
            config.seed,
        )
        reader = FrozenPolicy(
            pretraining.model,
            pretraining.state_mean,
            pretraining.state_std,
            family.rtg_scale,
            pretraining.payload["eval_target"],
            compute.torch_device,
        )
        measure_curve = partial(curve.measure, reader)
    store = CheckpointStore(run_dir / "checkpoints", keep=config.keep_checkpoints)
    log_metrics = run.log_metrics if run is not None else None
    return pretrain_prompt_dt(
        pretraining, config, family, store, info, log_metrics=log_metrics, measure_curve=measure_curve
    )


def run_pretrain(
    workspace: Workspace, config: PretrainConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run | None, dict[str, Any]]:
    """The stage. Under torchrun, rank 0 owns the run directory and every rank trains its batch slice."""

    def open_pretrain(config: PretrainConfig) -> tuple[Run, PretrainConfig]:
        if resume is None:  # missing datasets fail before a run exists
            load_pretraining_data(workspace.datasets_dir, get_family(config.env), config)
        return open_run(
            workspace, "pretrain", config, argv=argv, family=config.env, seed=config.seed, resume=resume
        )

    with distributed_run(config, open_pretrain) as ranks:
        run, config = ranks.run, ranks.config
        if run is None:
            return None, train(None, ranks.dir, workspace, config, ranks.info)
        with stage_run(run):
            summary = train(run, run.dir, workspace, config, ranks.info)
            checkpoint = Path(summary.pop("checkpoint"))
            curves = ["loss", "lr", "grad_norm", "train_task_return", "train_task_success"]
            record_trained(run, checkpoint, curves, f"pretrain {get_family(config.env).name}")
            summary["checkpoint"] = str(checkpoint.relative_to(run.dir))
            run.manifest["summary"].update(summary)
            run.save()
        return run, summary
