"""The scaling ladder's definition: does the ordering of methods change with the Prompt-DT's pretraining
budget?

At the `study` preset the Prompt-DT sees 4,000 steps × 1 segment per training task a step, 1/200 of the
paper's 50,000 × 16. Each rung is `pdiff reproduce --preset study` with a family of `--set` overrides, run in
a workspace of its own (two rungs in one would report into the same cells); `pdiff report --scaling` then
sets the rungs' reports side by side (pdiff.results.scaling). The rungs' runs: pdiff.workflows.scaling.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pdiff.config import load_presets, parse_set
from pdiff.envs import get_family
from pdiff.errors import UsageError

PRESET = "study"  # the preset every rung starts from
# What every rung runs: Prompt Diffuser, the real prompt, Prompt-Tuning DT, the full-data model and the
# weight-tuning method with the highest Table 1 mean in the study's first edition
# (docs/results/<family>-study; a test reads it back from there), with expert few-shot data and no ablation: a
# rung costs a fraction of a study.
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
    """The pretraining samples a rung implies for `family` at the packaged study preset, which sets both
    budgets (read from the preset, not the pretrain stage's config, so that reports can say it)."""
    presets, _ = load_presets(None)
    budget = dict(presets[PRESET]["pretrain"])
    budget.update(
        parse_set(item.removeprefix("pretrain.")) for item in rung.overrides if item.startswith("pretrain.")
    )
    tasks = len(get_family(family).training_tasks())  # the Prompt-DT behind the cells: not the full-data one
    return pretraining_samples(int(budget["steps"]), int(budget["batch_per_task"]), tasks)


def workspace_name(rung: Rung) -> str:
    return f"scaling-{rung.name}"


def rung_methods(family: str) -> list[str]:
    """The methods a rung runs on `family`: RUNG_METHODS and its strongest weight-tuning method."""
    return [*RUNG_METHODS, *([STRONGEST_WEIGHT_TUNING[family]] if family in STRONGEST_WEIGHT_TUNING else [])]


def rung_commands(
    rung: Rung, family: str, report_dir: str, workspace: str | None = None, jobs: int = 2
) -> list[str]:
    """The commands that make a rung's report: reproduce, the fidelity runs where the test tasks are held out,
    and the report into `report_dir` (workspace: `scaling-<rung>` unless named)."""
    workspace = shlex.quote(workspace or workspace_name(rung))
    report_dir = shlex.quote(report_dir)
    sets = "".join(f" --set {item}" for item in rung.overrides)
    scope = f" --methods {','.join(rung_methods(family))} --data-kinds expert --no-guidance-ablation"
    commands = [f"pdiff -w {workspace} reproduce --env {family} --preset {PRESET}{scope} --jobs {jobs}{sets}"]
    if not get_family(family).in_distribution:
        commands.append(f"python scripts/fidelity.py {workspace} --env {family}")
    commands.append(f"pdiff -w {workspace} report --env {family} --out {report_dir}")
    return commands
