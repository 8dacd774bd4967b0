"""Where each dataset kind of a collect run comes from: the actor behind a kind (scripted expert, SAC
teacher or snapshot, uniform actions), Meta-World's calibrated medium noise, a task's episode counts, and
the lineage a dataset records of its policy.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from pdiff.collection.behaviour import KINDS, REFERENCE_RANDOM, PolicySpec, calibrate_medium_noise
from pdiff.collection.teacher import needs_teacher
from pdiff.console import log
from pdiff.envs.base import TaskFamily
from pdiff.workspace.runs import Run


def calibrated_medium_noise(
    run: Run, family: TaskFamily, fraction: float, *, horizon: int, seed: int
) -> float:
    """Meta-World: the medium kind's action noise calibrated to `fraction` on ten training tasks (once per
    run: a resumed run reads what it calibrated)."""
    calibration = run.manifest["summary"].get("medium_calibration")
    if calibration is None:
        tasks = list(family.train_tasks)[:: max(1, len(family.train_tasks) // 10)][:10]
        log.info("calibrating the medium kind's action noise on %d training tasks", len(tasks))
        calibration = calibrate_medium_noise(family, fraction, tasks=tasks, horizon=horizon, seed=seed)
        run.manifest["summary"]["medium_calibration"] = calibration
        run.save()
    log.info(
        "medium: action noise %.3f, return %.1f (target %.1f; expert %.1f, random %.1f)",
        calibration["noise"],
        calibration["return"],
        calibration["target_return"],
        calibration["expert_return"],
        calibration["random_return"],
    )
    return float(calibration["noise"])


def policy_specs(
    family: TaskFamily,
    teacher: dict[str, Any] | None,
    *,
    expert_noise: float,
    prompt_noise: float,
    medium_noise: float,
) -> dict[str, PolicySpec]:
    """The actor behind each kind. Meta-World: the scripted expert (with `medium_noise` for medium);
    MuJoCo: the SAC teacher and a snapshot."""
    weak_terminates = False  # ant-dir: weak policies fall within ~14 steps; keep their episodes whole
    if not needs_teacher(family):
        expert = PolicySpec("expert", "scripted", expert_noise)
        return {
            "expert": expert,
            "prompt-expert": PolicySpec("prompt-expert", "scripted", prompt_noise),
            "medium": PolicySpec("medium", "scripted", medium_noise),
            "random": PolicySpec("random", "uniform"),
        }
    if teacher is None:
        raise ValueError("MuJoCo families need a teacher")
    return {
        "expert": PolicySpec("expert", "teacher", expert_noise, teacher["expert_dir"]),
        "prompt-expert": PolicySpec("prompt-expert", "teacher", prompt_noise, teacher["expert_dir"]),
        "medium": PolicySpec("medium", "teacher", expert_noise, teacher["medium_dir"], weak_terminates),
        "random": PolicySpec("random", "uniform", terminate_when_unhealthy=weak_terminates),
        # the random reference return is measured as eval runs episodes: ending when the robot falls
        REFERENCE_RANDOM: PolicySpec(REFERENCE_RANDOM, "uniform", terminate_when_unhealthy=True),
    }


def episode_plan(
    family: TaskFamily,
    specs: dict[str, PolicySpec],
    kinds: list[str],
    *,
    episodes: int,
    prompt_episodes: int,
) -> tuple[tuple[PolicySpec, int], ...]:
    """(actor, number of episodes) per kind each task runs: the requested kinds, and the expert and random
    ones every task needs for its reference returns."""
    counts = {kind: (prompt_episodes if kind == "prompt-expert" else episodes) for kind in kinds}
    # The references always average `episodes` episodes (seeded by index, so the same ones), collected or
    # not: a normalised score must not depend on which kinds a collect wrote.
    for reference in ("expert", "random"):
        counts.setdefault(reference, episodes)
    if REFERENCE_RANDOM in specs and family.terminates_early:
        counts[REFERENCE_RANDOM] = counts["random"]
    return tuple((specs[kind], counts[kind]) for kind in (*KINDS, REFERENCE_RANDOM) if kind in counts)


def policy_lineage(spec: PolicySpec, teacher: dict[str, Any] | None) -> dict[str, Any]:
    lineage: dict[str, Any] = asdict(spec)
    if spec.teacher_dir and teacher is not None:
        from pdiff.teachers.policy import TeacherPolicy

        lineage["teacher_sha256"] = TeacherPolicy.load(Path(spec.teacher_dir)).sha256
        lineage["teacher_run"] = teacher["teacher_run"]
    return lineage
