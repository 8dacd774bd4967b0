"""`pdiff collect`: one immutable dataset per (family, task, kind), in Minari's HDF5 layout.

Work is split by task across worker processes; each task's episodes are seeded per episode, so the
datasets are byte-identical for a seed. A task's datasets are written as soon as its worker returns, and
the run records each one, so `--resume` after a kill collects only what is missing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pdiff.collection.behaviour import KINDS, TaskJob
from pdiff.collection.datasets import (
    collect_summary,
    run_jobs,
    task_spaces,
    write_family_metadata,
    write_task_datasets,
    written_pairs,
)
from pdiff.collection.sources import calibrated_medium_noise, episode_plan, policy_lineage, policy_specs
from pdiff.collection.teacher import TeacherSettings, ensure_teacher, needs_teacher, shipped_provenance
from pdiff.config import StageConfig, register_stage_config
from pdiff.console import StageProgress, log
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily
from pdiff.stages.common import open_run, stage_run
from pdiff.teachers.sac import SACConfig
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run


class CollectConfig(StageConfig):
    env: str = Field("metaworld-reach", description="Task family (see `pdiff envs`).")
    kinds: list[str] = Field(
        list(KINDS), description="Dataset kinds to collect: expert, medium, random, prompt-expert."
    )
    tasks: list[int] | None = Field(
        None, description="Task ids to collect (default: every task of the family)."
    )
    episodes: int = Field(20, ge=1, description="Episodes per task for the expert, medium and random kinds.")
    prompt_episodes: int = Field(5, ge=1, description="Episodes per task for prompt-expert (prompts only).")
    horizon: int | None = Field(None, ge=1, description="Episode length (default: the family's horizon).")
    workers: int = Field(2, ge=1, description="Worker processes; each collects whole tasks.")
    seed: int = Field(0, ge=0, description="Root seed; every episode's reset seed derives from it.")
    expert_noise: float = Field(
        0.1, ge=0, description="Gaussian action noise of expert episodes (distinct episodes)."
    )
    prompt_noise: float = Field(0.05, ge=0, description="Gaussian action noise of prompt-expert episodes.")
    medium_noise: float | None = Field(
        None,
        ge=0,
        description="Meta-World: Gaussian action noise of the medium kind (default: calibrated per family, "
        "see medium_fraction).",
    )
    medium_fraction: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="The medium kind's return: random + f·(expert − random). MuJoCo: the teacher snapshot "
        "nearest it; Meta-World (medium_noise unset): the scripted expert's action noise that gives it on "
        "ten training tasks.",
    )
    teacher_source: Literal["train", "shipped"] = Field(
        "train",
        description="MuJoCo: `shipped` collects with the SAC teacher inside the package (minutes; "
        "`pdiff envs` says which families have one), `train` trains one in this workspace or reuses one "
        "trained earlier (the `teacher` settings).",
    )
    teacher: SACConfig = Field(
        default_factory=SACConfig, description="SAC teacher (MuJoCo families, teacher_source=train)."
    )
    teacher_run: str | None = Field(
        None,
        description="Reuse (or, given more teacher.total_updates, continue in a copy) the finished teacher "
        "of this collect run (default: the most-trained one with the same settings and seed).",
    )

    @model_validator(mode="before")
    @classmethod
    def _medium_noise_is_metaworld_only(cls, data: Any) -> Any:  # pydantic's raw input
        # A SAC teacher's snapshot makes the MuJoCo medium kind: the noise means nothing there, and a run
        # recorded with the old default (3.0) must still match today's config.
        if isinstance(data, dict) and not str(data.get("env", "metaworld-")).startswith("metaworld-"):
            data = {**data, "medium_noise": None}
        return data

    @model_validator(mode="after")
    def _shipped_takes_no_teacher_run(self) -> CollectConfig:
        if self.teacher_source == "shipped" and self.teacher_run:
            raise ValueError("teacher_run names a trained teacher; teacher_source=shipped uses the package's")
        return self

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(
                f"unknown kind {unknown[0] if unknown else '(none)'}; choose from {', '.join(KINDS)}"
            )
        return list(dict.fromkeys(kinds))

    def teacher_settings(self) -> TeacherSettings:
        """What this collect asks of its teacher, as `pdiff.collection.teacher` takes it."""
        return TeacherSettings(
            source=self.teacher_source,
            sac=self.teacher,
            seed=self.seed,
            medium_fraction=self.medium_fraction,
            reuse_run=self.teacher_run,
        )


register_stage_config("collect", CollectConfig)


def plan_tasks(family: TaskFamily, config: CollectConfig) -> list[int]:
    tasks = list(range(family.num_tasks)) if config.tasks is None else config.tasks
    for task in tasks:
        family.check_task_id(task)
    return sorted(set(tasks))


def medium_noise(run: Run, family: TaskFamily, config: CollectConfig, horizon: int) -> float:
    """Meta-World's medium action noise: `medium_noise` when set, else calibrated to `medium_fraction`
    (0 where no medium kind is collected or a teacher snapshot makes it)."""
    if "medium" not in config.kinds or needs_teacher(family):
        return 0.0
    if config.medium_noise is not None:
        return config.medium_noise
    return calibrated_medium_noise(run, family, config.medium_fraction, horizon=horizon, seed=config.seed)


def collect(
    workspace: Workspace,
    run: Run,
    config: CollectConfig,
    teacher: dict[str, Any] | None,
    *,
    horizon: int,
) -> dict[str, Any]:
    """Collect every planned (task, kind) not yet written by `run`; return the summary."""
    family = get_family(config.env)
    tasks = plan_tasks(family, config)
    specs = policy_specs(
        family,
        teacher,
        expert_noise=config.expert_noise,
        prompt_noise=config.prompt_noise,
        medium_noise=medium_noise(run, family, config, horizon),
    )
    write_family_metadata(workspace.datasets_dir, family)
    done = written_pairs(run)
    pending = [t for t in tasks if any((t, k) not in done for k in config.kinds)]
    if len(pending) < len(tasks):
        log.info("resuming: %d of %d tasks already written", len(tasks) - len(pending), len(tasks))
    plan = episode_plan(
        family, specs, config.kinds, episodes=config.episodes, prompt_episodes=config.prompt_episodes
    )
    jobs = [TaskJob(family.name, task, horizon, config.seed, plan) for task in pending]
    writing = {
        "spaces": task_spaces(family, tasks[0], horizon),
        "lineage": {kind: policy_lineage(specs[kind], teacher) for kind in config.kinds},
        "horizon": horizon,
    }
    with StageProgress(
        f"collect {family.name}", total=len(tasks), completed=len(tasks) - len(pending), unit="tasks"
    ) as bar:
        for task, episodes in run_jobs(jobs, config.workers):
            write_task_datasets(
                workspace, run, family, task, episodes, kinds=config.kinds, seed=config.seed, **writing
            )
            bar.update(1, task=task)
    return collect_summary(run)


def run_collect(
    workspace: Workspace, config: CollectConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run, dict[str, Any]]:
    """The whole stage: validate, open (or resume) the run, train or reuse a teacher, collect, summarise."""
    if resume is None:  # bad input fails before a run exists
        family = get_family(config.env)
        plan_tasks(family, config)
        if needs_teacher(family) and config.teacher_source == "shipped":
            shipped_provenance(family, config.medium_fraction)
    run, config = open_run(
        workspace, "collect", config, argv=argv, family=config.env, seed=config.seed, resume=resume
    )
    family = get_family(config.env)
    with stage_run(run):
        horizon = family.resolve_horizon(config.horizon, max_horizon=getattr(family, "max_horizon", None))
        teacher = None
        if needs_teacher(family):
            teacher = ensure_teacher(workspace, run, family, config.teacher_settings(), horizon=horizon)
        summary = collect(workspace, run, config, teacher, horizon=horizon)
        run.manifest["summary"].update(summary)
        run.save()
    return run, summary
