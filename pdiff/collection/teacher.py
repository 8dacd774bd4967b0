"""The SAC teacher behind the MuJoCo families' data: trained once per family by `collect`, then reused.

A later collect of the same family reuses the most-trained teacher of a finished collect run with the same
teacher settings and seed (or the one of the run named by `teacher_run`), so collecting more data, other
kinds or a new version never retrains it. Asking for more `teacher.total_updates` than that teacher had
continues a copy of it in the new run (the earlier run is never written to): the result is the teacher a
single run of the larger budget would have trained. An out-of-distribution family (ant-dir-ood) has its base
family's tasks, so it reuses the base family's teacher too: the teacher is a data source, trained on every
task; only the Prompt-DT and the diffusion model must not see the test range. `teacher_source=shipped` skips
all of this and collects with the teacher inside the package (`pdiff.teachers.shipped`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pdiff.collection.behaviour import PolicySpec, build_policy, medium_target, run_episode
from pdiff.console import StageProgress, log
from pdiff.envs import get_family, ood_variant
from pdiff.envs.base import TaskFamily
from pdiff.errors import ArtifactError, UsageError
from pdiff.teachers.policy import TeacherPolicy
from pdiff.teachers.sac import SACConfig
from pdiff.teachers.sac_training import train_teacher
from pdiff.teachers.shipped import load_shipped, read_provenance, teacher_family_name
from pdiff.teachers.storage import nearest_snapshot
from pdiff.workspace.atomic import remove_tree
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, RunStatus, find_run, list_runs
from pdiff.workspace.verification import verified_output

TEACHER_DIR = "teacher"


@dataclass(frozen=True)
class TeacherSettings:
    """What a collect run asks of its teacher."""

    source: Literal["train", "shipped"]  # train (or reuse) one in the workspace, or take the package's
    sac: SACConfig
    seed: int
    medium_fraction: float  # the medium snapshot's return: random + fraction·(expert − random)
    reuse_run: str | None = None  # the collect run whose teacher to reuse (default: found by settings)


def _teacher_updates(run: Run) -> int | None:
    """Updates of the teacher trained in `run` (None while it has none finished, or reused another's)."""
    info = run.manifest.get("summary", {}).get("teacher")
    if not info or info.get("teacher_run") != run.run_id or not (run.dir / TEACHER_DIR).is_dir():
        return None
    return int(info["updates"])


def needs_teacher(family: TaskFamily) -> bool:
    """Meta-World has scripted experts; the MuJoCo families learn a SAC teacher first."""
    return not family.scripted_expert


def teacher_families(family: TaskFamily) -> set[str]:
    """The families whose collect runs hold a teacher for `family`'s tasks: a base family and its OOD variant
    (same tasks; the teacher is trained under the base family's name either way)."""
    base = teacher_family_name(family)
    return {base, *filter(None, [ood_variant(base)])}


def teacher_family(family: TaskFamily) -> TaskFamily:
    """The family a teacher is trained on: an OOD family's base (the same tasks, all of them), so that one
    teacher serves both and its checkpoints resume under either."""
    return get_family(teacher_family_name(family))


def _source(
    workspace: Workspace, family: TaskFamily, settings: TeacherSettings, current: Run
) -> tuple[int, Run] | None:
    """(updates, run) of the earlier collect run whose teacher this one reuses or continues, if any."""
    if settings.reuse_run:
        # Its collect may have stopped after the teacher finished: the teacher is all that is read.
        source = find_run(workspace, settings.reuse_run, "collect")
        if source.family not in teacher_families(family):
            raise ArtifactError(
                f"collect run {source.run_id} trained a teacher for {source.family}, not {family.name}",
                hint=f"name a collect run of {' or '.join(sorted(teacher_families(family)))}",
            )
        updates = _teacher_updates(source)
        if updates is None:
            raise ArtifactError(
                f"collect run {source.run_id} has no finished teacher of its own",
                hint="name a MuJoCo-family collect run whose teacher finished",
            )
        return updates, source
    asked = settings.sac.model_dump(mode="json")
    candidates: list[tuple[int, Run]] = []  # (updates, run), oldest run first
    for run in [r for r in list_runs(workspace, "collect") if r.family in teacher_families(family)]:
        if run.run_id == current.run_id or run.status is not RunStatus.FINISHED:
            continue
        updates = _teacher_updates(run)
        recorded = {**(run.config.get("teacher") or {}), "total_updates": asked["total_updates"]}
        same = recorded == asked and run.config.get("seed") == settings.seed
        if same and updates is not None and updates <= asked["total_updates"]:
            candidates.append((updates, run))
    # The most-trained teacher; among equals the newest (max keeps the first maximum, so search reversed).
    return max(reversed(candidates), key=lambda c: c[0]) if candidates else None


def _continue_in(run: Run, source: Run) -> Path:
    """This run's own copy of `source`'s teacher (checkpoints checked first), to train further."""
    out_dir = run.dir / TEACHER_DIR
    if out_dir.is_dir():  # copied before a kill: resume there
        return out_dir
    for output in source.manifest.get("outputs", []):
        if output["kind"] == "teacher_checkpoint":
            verified_output(source, source.dir / output["path"])
    partial = run.dir / f".{TEACHER_DIR}.partial"
    remove_tree(partial)
    shutil.copytree(source.dir / TEACHER_DIR, partial)
    partial.rename(out_dir)
    return out_dir


def random_return(family: TaskFamily, horizon: int, seed: int) -> float:
    """Mean return of uniform actions, one episode per task (the low end of the medium target), ending early
    where evaluation does (ant-dir falls): the medium snapshot sits halfway on the scale eval scores on."""
    returns = []
    spec = PolicySpec("random", "uniform", terminate_when_unhealthy=True)
    rng = np.random.default_rng(seed)
    for task in range(family.num_tasks):
        env = family.make_env(task, horizon=horizon, terminate_when_unhealthy=spec.terminate_when_unhealthy)
        try:
            policy = build_policy(spec, family, task)
            returns.append(run_episode(env, policy, int(rng.integers(2**31))).total_return)
        finally:
            env.close()
    return float(np.mean(returns))


def shipped_provenance(family: TaskFamily, medium_fraction: float) -> tuple[str, dict[str, Any]]:
    """(base family, provenance) of the package's teacher for `family` (its base family's, for an OOD family);
    a clear error when none ships or it does not fit the settings (checked before a collect run opens)."""
    base = teacher_family(family).name
    provenance = read_provenance(base)
    if medium_fraction != provenance["medium"]["medium_fraction"]:
        raise UsageError(
            f"the shipped {base} teacher's medium snapshot was chosen for medium_fraction "
            f"{provenance['medium']['medium_fraction']}, not {medium_fraction}",
            hint="keep the default medium_fraction, or `--set teacher_source=train` to train a teacher of "
            "your own",
        )
    return base, provenance


def _shipped_teacher(run: Run, family: TaskFamily, medium_fraction: float) -> dict[str, Any]:
    """The package's teacher for `family`, as `ensure_teacher` returns."""
    base, provenance = shipped_provenance(family, medium_fraction)
    expert, medium = load_shipped(base, "expert"), load_shipped(base, "medium")
    info = {
        "source": "shipped",
        "teacher_dir": str(expert.directory.parent),
        "teacher_run": f"shipped:{base}",
        "expert_dir": str(expert.directory),
        "expert_sha256": expert.sha256,
        "expert_eval_return": provenance["expert"]["eval_return"],
        "medium_dir": str(medium.directory),
        "medium_update": provenance["medium"]["update"],
        "medium_eval_return": provenance["medium"]["eval_return"],
        "random_return": provenance["random_return"],
        "medium_target_return": provenance["medium"]["target_return"],
        "updates": provenance["updates"],
        "trained_by": provenance["trained_by"],
    }
    run.record_input("teacher", info["teacher_run"], expert.sha256)
    run.manifest["summary"]["teacher"] = info
    run.save()
    log.info(
        "shipped teacher for %s: %d updates, expert %.1f, medium snapshot %d at %.1f",
        base,
        info["updates"],
        info["expert_eval_return"],
        info["medium_update"],
        info["medium_eval_return"],
    )
    return info


def ensure_teacher(
    workspace: Workspace, run: Run, family: TaskFamily, settings: TeacherSettings, *, horizon: int
) -> dict[str, Any]:
    """Train the family's teacher in this run (resuming it after a kill), reuse an earlier one, or take the
    package's (source "shipped"). `horizon`: the episode length of the collect, for the medium target's
    random end."""
    if settings.source == "shipped":
        return _shipped_teacher(run, family, settings.medium_fraction)
    total = settings.sac.total_updates
    base_updates, source = _source(workspace, family, settings, run) or (0, None)
    reused = source is not None and base_updates >= total
    if source is None:
        out_dir = run.dir / TEACHER_DIR
    elif reused:
        log.info("reusing the teacher of collect run %s", source.run_id)
        out_dir = source.dir / TEACHER_DIR
    else:
        log.info(
            "continuing the teacher of collect run %s from %d to %d updates",
            source.run_id,
            base_updates,
            total,
        )
        out_dir = _continue_in(run, source)
    with StageProgress(f"teacher {family.name}", total=total, unit="SAC updates") as bar:

        def progress(record: dict) -> None:
            fields = {
                k: record[k] for k in ("eval_return", "train_episode_return") if record.get(k) is not None
            }
            if bar.completed == 0:  # the first record tells where a resumed teacher starts
                bar.restart_at(int(record["update"]))
            bar.update(int(record["update"]) - bar.completed, **fields)

        summary = train_teacher(
            teacher_family(family),
            settings.sac,
            out_dir,
            seed=settings.seed,
            resume=True,
            on_progress=progress,
        )
    low = random_return(family, horizon, settings.seed)
    target = medium_target(low, summary.expert_return, settings.medium_fraction)
    medium = nearest_snapshot(out_dir, target)
    expert = TeacherPolicy.load(summary.checkpoint_dir)
    info = {
        "source": "train",
        "teacher_dir": str(out_dir),
        "teacher_run": source.run_id if reused else run.run_id,
        "expert_dir": str(summary.checkpoint_dir),
        "expert_sha256": expert.sha256,
        "expert_eval_return": summary.expert_return,
        "medium_dir": str(medium.path),
        "medium_update": medium.update,
        "medium_eval_return": medium.mean_return,
        "random_return": low,
        "medium_target_return": target,
        "updates": summary.updates,
    }
    if reused:
        run.record_input("teacher", source.run_id, expert.sha256)
    else:
        if source is not None:
            info["continued_from"] = {"run": source.run_id, "updates": base_updates}
            base_sha = source.manifest["summary"]["teacher"]["expert_sha256"]
            run.record_input("teacher_base", source.run_id, base_sha)
        run.record_output(Path(summary.checkpoint_dir), "teacher_checkpoint")
    run.manifest["summary"]["teacher"] = info
    run.save()
    log.info(
        "teacher: expert %.1f, medium snapshot %d at %.1f (target %.1f), random %.1f",
        summary.expert_return,
        medium.update,
        medium.mean_return,
        target,
        low,
    )
    return info
