"""The SAC teacher behind the MuJoCo families' data: trained once per family by `collect`, then reused.

A later collect of the same family reuses the teacher of the newest finished collect run whose teacher
settings and seed are identical (or the run named by `teacher_run`), so collecting more data, other kinds
or a new version never retrains it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pdiff.console import StageProgress, log
from pdiff.data.collectors import PolicySpec, build_policy, run_episode
from pdiff.envs.base import TaskFamily
from pdiff.errors import ArtifactError
from pdiff.teachers.policy import TeacherPolicy
from pdiff.teachers.storage import nearest_snapshot
from pdiff.teachers.training import train_teacher
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, RunStatus, find_run, list_runs, require_finished

if TYPE_CHECKING:
    from pdiff.stages.collect import CollectConfig

TEACHER_DIR = "teacher"


def _reusable(workspace: Workspace, family: TaskFamily, config: CollectConfig, current: Run) -> Run | None:
    if config.teacher_run:
        source = require_finished(find_run(workspace, config.teacher_run, "collect"))
        if not (source.dir / TEACHER_DIR).is_dir():
            raise ArtifactError(
                f"collect run {source.run_id} has no teacher", hint="name a MuJoCo-family collect run"
            )
        return source
    wanted = (config.teacher.model_dump(mode="json"), config.seed)
    for run in reversed(list_runs(workspace, "collect", family.name)):
        if run.run_id == current.run_id or run.status is not RunStatus.FINISHED:
            continue
        recorded = run.config
        if (recorded.get("teacher"), recorded.get("seed")) == wanted and (run.dir / TEACHER_DIR).is_dir():
            return run
    return None


def random_return(family: TaskFamily, horizon: int, seed: int) -> float:
    """Mean return of uniform actions, one episode per task (the low end of the medium target)."""
    returns = []
    spec = PolicySpec("random", "uniform", terminate_when_unhealthy=False)
    rng = np.random.default_rng(seed)
    for task in range(family.num_tasks):
        env = family.make_env(task, horizon=horizon, terminate_when_unhealthy=spec.terminate_when_unhealthy)
        try:
            policy = build_policy(spec, family, task)
            returns.append(run_episode(env, policy, int(rng.integers(2**31))).total_return)
        finally:
            env.close()
    return float(np.mean(returns))


def ensure_teacher(
    workspace: Workspace, run: Run, family: TaskFamily, config: CollectConfig
) -> dict[str, Any]:
    """Train the family's teacher in this run (resuming it after a kill) or reuse an earlier one."""
    source = _reusable(workspace, family, config, run)
    if source is not None:
        log.info("reusing the teacher of collect run %s", source.run_id)
        out_dir = source.dir / TEACHER_DIR
    else:
        out_dir = run.dir / TEACHER_DIR
    total = config.teacher.total_updates
    with StageProgress(f"teacher {family.name}", total=total) as bar:

        def progress(record: dict) -> None:
            fields = {
                k: record[k] for k in ("eval_return", "train_episode_return") if record.get(k) is not None
            }
            if bar.completed == 0:  # the first record tells where a resumed teacher starts
                bar.restart_at(int(record["update"]))
            bar.update(int(record["update"]) - bar.completed, **fields)

        summary = train_teacher(
            family, config.teacher, out_dir, seed=config.seed, resume=True, on_progress=progress
        )
    horizon = family.resolve_horizon(config.horizon, max_horizon=getattr(family, "max_horizon", None))
    low = random_return(family, horizon, config.seed)
    target = low + config.medium_fraction * (summary.expert_return - low)
    medium = nearest_snapshot(out_dir, target)
    expert = TeacherPolicy.load(summary.checkpoint_dir)
    info = {
        "teacher_dir": str(out_dir),
        "teacher_run": (source or run).run_id,
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
    if source is not None:
        run.record_input("teacher", source.run_id, expert.sha256)
    else:
        run.record_output(Path(summary.checkpoint_dir), "teacher_checkpoint")
    run.manifest["summary"]["teacher"] = info
    run.save()
    log.info("teacher: expert %.1f, medium snapshot %d at %.1f (target %.1f), random %.1f",
             summary.expert_return, medium.update, medium.mean_return, target, low)  # fmt: skip
    return info
