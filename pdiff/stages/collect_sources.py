"""Where each dataset kind comes from, for `pdiff collect`: the actor behind a kind (scripted expert, SAC
teacher or snapshot, uniform actions), Meta-World's calibrated medium noise, a task's episode counts, and the
lineage a dataset records of its policy.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdiff.console import log
from pdiff.data.collectors import KINDS, REFERENCE_RANDOM, PolicySpec, TaskJob, calibrate_medium_noise
from pdiff.envs.base import TaskFamily
from pdiff.stages.teacher import needs_teacher
from pdiff.workspace.runs import Run

if TYPE_CHECKING:
    from pdiff.stages.collect import CollectConfig

REFERENCE_EPISODES = 3  # random/expert episodes run for the normalised-score references when not collected


def medium_noise(run: Run, family: TaskFamily, config: CollectConfig, horizon: int) -> float:
    """Meta-World: the medium kind's action noise, `medium_noise` or, unset, calibrated to `medium_fraction`
    on ten training tasks (once per run: a resumed run reads what it calibrated)."""
    if config.medium_noise is not None:
        return config.medium_noise
    calibration = run.manifest["summary"].get("medium_calibration")
    if calibration is None:
        tasks = list(family.train_tasks)[:: max(1, len(family.train_tasks) // 10)][:10]
        log.info("calibrating the medium kind's action noise on %d training tasks", len(tasks))
        calibration = calibrate_medium_noise(
            family, config.medium_fraction, tasks=tasks, horizon=horizon, seed=config.seed
        )
        run.manifest["summary"]["medium_calibration"] = calibration
        run.save()
    log.info("medium: action noise %.3f, return %.1f (target %.1f; expert %.1f, random %.1f)",
             calibration["noise"], calibration["return"], calibration["target_return"],
             calibration["expert_return"], calibration["random_return"])  # fmt: skip
    return float(calibration["noise"])


def policy_specs(
    family: TaskFamily, config: CollectConfig, teacher: dict[str, Any] | None, medium_std: float
) -> dict[str, PolicySpec]:
    """The actor behind each kind. Meta-World: the scripted expert (with `medium_std` noise for medium);
    MuJoCo: the SAC teacher and a snapshot."""
    weak_terminates = False  # ant-dir: weak policies fall within ~14 steps; keep their episodes whole
    if not needs_teacher(family):
        expert = PolicySpec("expert", "scripted", config.expert_noise)
        return {
            "expert": expert,
            "prompt-expert": PolicySpec("prompt-expert", "scripted", config.prompt_noise),
            "medium": PolicySpec("medium", "scripted", medium_std),
            "random": PolicySpec("random", "uniform"),
        }
    if teacher is None:
        raise ValueError("MuJoCo families need a teacher")
    return {
        "expert": PolicySpec("expert", "teacher", config.expert_noise, teacher["expert_dir"]),
        "prompt-expert": PolicySpec("prompt-expert", "teacher", config.prompt_noise, teacher["expert_dir"]),
        "medium": PolicySpec(
            "medium", "teacher", config.expert_noise, teacher["medium_dir"], weak_terminates
        ),
        "random": PolicySpec("random", "uniform", terminate_when_unhealthy=weak_terminates),
        # the random reference return is measured as eval runs episodes: ending when the robot falls
        REFERENCE_RANDOM: PolicySpec(REFERENCE_RANDOM, "uniform", terminate_when_unhealthy=True),
    }


def task_job(
    family: TaskFamily, task: int, config: CollectConfig, specs: dict[str, PolicySpec], horizon: int
) -> TaskJob:
    counts = {
        kind: (config.prompt_episodes if kind == "prompt-expert" else config.episodes)
        for kind in config.kinds
    }
    for reference in ("expert", "random"):
        counts.setdefault(reference, REFERENCE_EPISODES)
    if REFERENCE_RANDOM in specs and family.terminates_early:
        counts[REFERENCE_RANDOM] = counts["random"]
    ordered = [(specs[kind], counts[kind]) for kind in (*KINDS, REFERENCE_RANDOM) if kind in counts]
    return TaskJob(family.name, task, horizon, config.seed, tuple(ordered))


def policy_lineage(spec: PolicySpec, teacher: dict[str, Any] | None) -> dict[str, Any]:
    lineage: dict[str, Any] = asdict(spec)
    if spec.teacher_dir and teacher is not None:
        from pdiff.teachers.policy import TeacherPolicy

        lineage["teacher_sha256"] = TeacherPolicy.load(Path(spec.teacher_dir)).sha256
        lineage["teacher_run"] = teacher["teacher_run"]
    return lineage
