"""The scaling ladder: does the ordering of methods change with the Prompt-DT's pretraining budget?

At the `study` preset the Prompt-DT sees 4,000 steps × 1 segment per training task a step, 1/200 of the
paper's 50,000 × 16. Each rung is `pdiff reproduce --preset study` with a family of `--set` overrides, run in
a workspace of its own (two rungs in one would report into the same cells); `pdiff report --scaling` then
sets the rungs' reports side by side (pdiff.report.scaling).

On a family whose test tasks are held out, `run_fidelity` also measures the generator's fidelity on training
tasks: the runs behind Table 1's prompt-diffuser and prompt-dt cells, repeated with every setting as recorded
but the tasks (pdiff.report.fidelity says what that measures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pdiff.config import StageConfig, resolve_config
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError
from pdiff.stages.pipeline import StepResult, finished_match, interrupted_match, run_stage, same_config
from pdiff.stages.pretrain import PretrainConfig
from pdiff.stages.reproduce import RESULT_NEUTRAL
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run

PRESET = "study"  # the preset every rung starts from
# What every rung runs: Prompt Diffuser, the real prompt, Prompt-Tuning DT, the full-data model and the
# weight-tuning method with the highest Table 1 mean in the study's first edition (docs/results/<family>-study;
# a test reads it back from there), with expert few-shot data and no ablation: a rung costs a fraction of a study.
RUNG_METHODS = ("prompt-diffuser", "prompt-dt", "ptdt", "full-data")
STRONGEST_WEIGHT_TUNING = {"cheetah-dir": "adaptor", "cheetah-vel": "lora", "ant-dir": "lora"}


@dataclass(frozen=True)
class Rung:
    name: str
    overrides: tuple[str, ...]  # `pdiff reproduce --set` items
    meaning: str


RUNGS = {
    rung.name: rung
    for rung in (
        Rung("x1", (), "the study preset as it is"),
        Rung("x4", ("pretrain.batch_per_task=4",), "4 segments per training task a step"),
        Rung(
            "x16", ("pretrain.batch_per_task=16",), "16 segments per training task a step: the paper's batch"
        ),
        Rung(
            "paper",
            (
                "pretrain.steps=50000",
                "pretrain.batch_per_task=16",
                "pretrain.warmup_steps=10000",
                "diffuse.steps=20000",
                "diffuse.batch_size=64",
            ),
            "the paper's pretrain and diffuse budgets",
        ),
    )
}


def rung_of(name: str) -> Rung:
    if name not in RUNGS:
        raise UsageError(f"{name!r} is not a rung of the scaling ladder", hint=f"rungs: {', '.join(RUNGS)}")
    return RUNGS[name]


def pretraining_samples(steps: int, batch_per_task: int, tasks: int) -> int:
    """Segments the Prompt-DT trained on: every step draws `batch_per_task` from each of its `tasks`."""
    return steps * batch_per_task * tasks


def implied_samples(rung: Rung, family: str) -> int:
    """The pretraining samples a rung implies for `family` at the packaged study preset."""
    overrides = [item.removeprefix("pretrain.") for item in rung.overrides if item.startswith("pretrain.")]
    config = resolve_config(
        PretrainConfig, "pretrain", workspace=None, preset=PRESET, overrides=overrides, flags={"env": family}
    )
    tasks = len(get_family(family).training_tasks(config.include_test_tasks))
    return pretraining_samples(config.steps, config.batch_per_task, tasks)


def workspace_name(rung: Rung) -> str:
    return f"scaling-{rung.name}"


def rung_commands(rung: Rung, family: str, report_dir: str) -> list[str]:
    """The commands that make a rung's report: reproduce, the fidelity runs where the test tasks are held out,
    and the report into `report_dir`."""
    workspace = workspace_name(rung)
    sets = "".join(f" --set {item}" for item in rung.overrides)
    methods = ",".join(
        (*RUNG_METHODS, *([STRONGEST_WEIGHT_TUNING[family]] if family in STRONGEST_WEIGHT_TUNING else []))
    )
    scope = f" --methods {methods} --data-kinds expert --no-guidance-ablation"
    commands = [f"pdiff -w {workspace} reproduce --env {family} --preset {PRESET}{scope} --jobs 2{sets}"]
    if not get_family(family).in_distribution:
        commands.append(f"python scripts/fidelity.py {workspace} --env {family}")
    commands.append(f"pdiff -w {workspace} report --env {family} --out {report_dir}")
    return commands


# -- fidelity on training tasks ------------------------------------------------------------------------------


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
    """Method → the eval run of its Table 1 cell (expert few-shot data, the most-run shot count), as the report
    chooses it, for prompt-diffuser and prompt-dt."""
    from pdiff.report.collect import gather
    from pdiff.report.fidelity import REAL_PROMPT
    from pdiff.report.tables import OURS, main_results, shot_counts

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
    matches = same_config(stage, config, RESULT_NEUTRAL.get(stage, frozenset()))
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
    `fidelity_tasks`), every other setting as recorded; finished repeats are reused, interrupted ones resumed."""
    from pdiff.stages.eval import EvalConfig
    from pdiff.stages.tune import TuneConfig

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
