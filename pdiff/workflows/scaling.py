"""The scaling ladder's runs beyond `pdiff reproduce` (the ladder itself: pdiff.ladder).

On a family whose test tasks are held out, `run_fidelity` measures the generator's fidelity on training
tasks: the runs behind Table 1's prompt-diffuser and prompt-dt cells, repeated with every setting as recorded
but the tasks (pdiff.results.fidelity says what that measures).
"""

from __future__ import annotations

import numpy as np

from pdiff.config import StageConfig
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError
from pdiff.ladder import PRESET
from pdiff.results.cells import gather
from pdiff.results.fidelity import REAL_PROMPT
from pdiff.results.tables import OURS, main_results, shot_counts
from pdiff.stages.eval import EvalConfig
from pdiff.stages.tune import TuneConfig
from pdiff.workflows.pipeline import (
    finished_match,
    interrupted_match,
    run_stage,
    same_config,
)
from pdiff.workflows.steps import StepResult
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run


def fidelity_tasks(family: TaskFamily) -> list[int]:
    """As many of the family's training tasks as it has test tasks, spread evenly over them."""
    trained_on = [t for t in family.train_tasks if t not in family.test_tasks]
    if not trained_on:
        raise UsageError(
            f"{family.name}'s test tasks are its training tasks: its Table 1 cells measure fidelity",
            hint="run pdiff report --scaling on its rungs as they are",
        )
    count = min(len(family.test_tasks), len(trained_on))
    return [trained_on[i] for i in np.linspace(0, len(trained_on) - 1, count).astype(int)]


def table1_runs(workspace: Workspace, family: str) -> dict[str, Run]:
    """Method → the eval run of its Table 1 cell (expert few-shot data, the most-run shot count), as the
    report chooses it, for prompt-diffuser and prompt-dt."""
    data = gather(workspace, envs=[family])
    counts = shot_counts(data, "expert")
    shots = max(counts, key=lambda n: sum(r.shots == n for r in data.results), default=0)
    cells = main_results(data, "expert", shots)
    found = {m: cells[(m, family)] for m in (OURS, REAL_PROMPT) if (m, family) in cells}
    missing = [m for m in (OURS, REAL_PROMPT) if m not in found or found[m].tune_run is None]
    if missing:
        raise UsageError(
            f"no finished tune and eval of {missing[0]} on {family}'s test tasks in {workspace.root}",
            hint=f"run the rung first: pdiff reproduce --env {family} --preset {PRESET}",
        )
    return {m: find_run(workspace, result.run_id, "eval") for m, result in found.items()}


def reuse_or_run(
    workspace: Workspace, key: str, stage: str, config: StageConfig, family: str, argv: list[str]
) -> StepResult:
    """`pdiff reproduce`'s rule for one step: the finished run of `config` (result-neutral settings aside),
    else the interrupted one resumed, else a new run."""
    matches = same_config(stage, config)
    done = finished_match(workspace, stage, family, matches)
    if done is not None:
        return StepResult(key, "reused", done.run_id, done.manifest.get("summary"))
    stale = interrupted_match(workspace, stage, family, matches)
    run = run_stage(workspace, stage, config, argv, resume=stale.run_id if stale else None)
    return StepResult(key, "resumed" if stale else "ran", run.run_id, run.manifest.get("summary"))


def run_fidelity(
    workspace: Workspace, family_name: str, tasks: list[int] | None, argv: list[str]
) -> list[StepResult]:
    """Repeat Table 1's prompt-diffuser and prompt-dt tune and eval runs on training tasks (`tasks`, default
    `fidelity_tasks`), every other setting as recorded; finished repeats are reused, interrupted ones
    resumed."""
    family = get_family(family_name)
    chosen = tasks or fidelity_tasks(family)
    results = []
    for method, evaluated in table1_runs(workspace, family.name).items():
        tuned = find_run(workspace, evaluated.config["tune_run"], "tune")
        tune_config = TuneConfig.model_validate({**tuned.config, "tasks": chosen})
        key = f"{method}:{family.name}:training-tasks"
        tune = reuse_or_run(workspace, f"tune:{key}", "tune", tune_config, family.name, argv)
        eval_config = EvalConfig.model_validate(
            {**evaluated.config, "tune_run": tune.run_id, "tasks": chosen}
        )
        results += [tune, reuse_or_run(workspace, f"eval:{key}", "eval", eval_config, family.name, argv)]
    return results
