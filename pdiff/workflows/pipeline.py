"""Steps run as library calls: resolve a step's stage config (explicit inputs, `--set` per stage), find a
finished run of exactly that config to reuse or an interrupted one to resume, run the stage in this process,
and the sequential loop over a plan that `pdiff reproduce` and `pdiff demo` share."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pdiff.config import StageConfig, resolve_config, stage_models
from pdiff.console import err
from pdiff.data.minari_format import dataset_dir, dataset_id, latest_version
from pdiff.data.minari_read import read_metadata
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.rollouts.scoring import reference_returns
from pdiff.stages import load_stage_configs
from pdiff.stages.collect import CollectConfig
from pdiff.stages.common import CADENCE_SETTINGS
from pdiff.stages.pretrain import PretrainConfig
from pdiff.stages.tune import TuneConfig
from pdiff.workflows.steps import Step, StepResult, resolved
from pdiff.workspace.root import STAGES, Workspace
from pdiff.workspace.runs import Run, RunStatus, list_runs

RESUMABLE = {"collect", "pretrain", "diffuse", "tune"}  # stages that keep work done before a kill
# Settings that change how a stage runs, never what it produces: a finished run may differ in them.
RESULT_NEUTRAL = {
    "collect": frozenset({"workers"}),
    "eval": frozenset({"workers"}),
    "pretrain": CADENCE_SETTINGS,
    "diffuse": CADENCE_SETTINGS,
}
# Flags named otherwise on the command line (the others: --<key with dashes>).
FLAG_NAMES = {
    "pretrain_run": "--pretrain",
    "diffuse_run": "--diffuse",
    "tune_run": "--tune",
    "lam": "--lambda",
}


def stage_config(
    workspace: Workspace,
    stage: str,
    preset: str | None,
    flags: dict[str, Any],
    overrides: list[str] | None = None,
) -> StageConfig:
    """A stage's config from the workspace presets, `--set` overrides and flags (as its CLI command does);
    reproduce's once pdiff.workflows.reproduce is imported."""
    load_stage_configs()
    model = stage_models()[stage]
    return resolve_config(model, stage, workspace=workspace, preset=preset, overrides=overrides, flags=flags)


def run_stage(
    workspace: Workspace, stage: str, config: StageConfig, argv: list[str], resume: str | None = None
) -> Run:
    """Call `pdiff.stages.<stage>.run_<stage>` in this process (single process: rank 0 owns the run)."""
    runner = getattr(importlib.import_module(f"pdiff.stages.{stage}"), f"run_{stage}")
    kwargs = {"resume": resume} if resume else {}
    run = runner(workspace, config, argv=argv, **kwargs)[0]
    assert run is not None  # only a non-zero torchrun rank returns no run
    return run


def same_config(
    stage: str, config: StageConfig, ignore: frozenset[str] = frozenset()
) -> Callable[[Run], bool]:
    """A matcher of runs whose recorded config equals `config`, keys in `ignore` and the stage's
    result-neutral ones aside. A config recorded before some setting existed is read as the run ran, so
    upgrading pdiff does not redo finished work."""
    ignore = ignore | RESULT_NEUTRAL.get(stage, frozenset())  # how often a run logs changes no result
    wanted = {k: v for k, v in config.model_dump(mode="json").items() if k not in ignore}

    def matches(run: Run) -> bool:
        if run.stage != stage:
            return False
        recorded = run.config
        if set(recorded) != set(type(config).model_fields):
            try:  # recorded by an older pdiff: read as it ran (settings added since take OLDER or defaults)
                recorded = type(config).model_validate(recorded).model_dump(mode="json")
            except ValidationError:
                return False
        return {k: v for k, v in recorded.items() if k not in ignore} == wanted

    return matches


def finished_match(
    workspace: Workspace, stage: str, family: str | None, matches: Callable[[Run], bool]
) -> Run | None:
    """The newest FINISHED run of `stage` that `matches`, or None. An eval counts only if it scored against
    the reference returns the datasets hold now."""
    done = [r for r in list_runs(workspace, stage, family) if r.status is RunStatus.FINISHED and matches(r)]
    # newest first, so that an eval's results are read only until one is current
    current = (
        r for r in reversed(done) if stage != "eval" or scored_against_current_references(workspace, r)
    )
    return next(current, None)


def scored_against_current_references(workspace: Workspace, run: Run) -> bool:
    """Whether an eval's normalised scores used the reference returns its tasks' expert datasets hold now: a
    collect that measured them again (a newer version with the same episodes) leaves the raw returns as they
    were and the normalised scores stale."""
    try:
        results = json.loads((run.dir / "eval" / "results.json").read_text())
        family = get_family(results["family"])
    except (OSError, ValueError, KeyError):  # unreadable results: evaluate again rather than trust them
        return False
    return all(
        reference_returns(workspace.datasets_dir, family, int(task))
        == (scores["ref_random_return"], scores["ref_expert_return"])
        for task, scores in results.get("per_task", {}).items()
    )


def interrupted_match(
    workspace: Workspace, stage: str, family: str | None, matches: Callable[[Run], bool]
) -> Run | None:
    """The newest run of `stage` that `matches` and was interrupted (stale RUNNING or KILLED), if
    resumable."""
    if stage not in RESUMABLE:
        return None
    runs = [
        r
        for r in list_runs(workspace, stage, family)
        if (r.is_stale() or r.status is RunStatus.KILLED) and matches(r)
    ]
    return runs[-1] if runs else None


def pretrain_datasets_match(workspace: Workspace, config: StageConfig, run: Run) -> bool:
    """A finished pretrain counts only if it read the data that is the latest now, by content: a newer
    version with the same episodes (collected again for its reference returns, say) changes nothing it
    learnt."""
    assert isinstance(config, PretrainConfig)  # a pretrain step's
    family = get_family(config.env)
    wanted = set()
    for kind in (config.data_kind, "prompt-expert"):
        for task in family.training_tasks(config.include_test_tasks):
            version = latest_version(workspace.datasets_dir, family.name, task, kind)
            if version is None:
                return False
            ident = dataset_id(family.name, task, kind, version)
            wanted.add(read_metadata(dataset_dir(workspace.datasets_dir, ident))["pdiff"]["content_sha256"])
    return {i["sha256"] for i in run.manifest.get("inputs", []) if i["kind"] == "dataset"} == wanted


def split_overrides(overrides: list[str]) -> dict[str, list[str]]:
    """`--set pretrain.steps=300` → {"pretrain": ["steps=300"]}: a plan passes each to its stage."""
    grouped: dict[str, list[str]] = {}
    for item in overrides:
        stage, _, rest = item.partition(".")
        if stage not in STAGES or not rest:
            raise UsageError(
                f"--set {item!r} does not start with a stage name",
                hint="write e.g. --set pretrain.steps=300 (stages: " + ", ".join(STAGES) + ")",
            )
        grouped.setdefault(stage, []).append(rest)
    return grouped


def step_config(
    workspace: Workspace,
    step: Step,
    preset: str | None,
    overrides: dict[str, list[str]],
    ids: dict[Step, str],
    configs: dict[Step, StageConfig],
) -> StageConfig:
    """The config the stage will record: explicit inputs, and for eval the tune run's seeds/shots/data."""
    flags = {k: resolved(v, ids) for k, v in step.flags.items()}
    if step.stage == "report":
        flags["runs"] = sorted(flags["runs"])
    tuned = step.flags.get("tune_run")
    upstream = configs.get(tuned) if step.stage == "eval" and isinstance(tuned, Step) else None
    if isinstance(
        upstream, TuneConfig
    ):  # eval of a tune run takes these from it (pdiff.stages.eval.run_eval)
        flags.update(
            prompt="auto",
            pretrain_run=upstream.pretrain_run,
            pretrain_runs=upstream.pretrain_runs,
            seeds=upstream.seeds,
            shots=upstream.shots,
            data_kind=upstream.data_kind,
        )
    return stage_config(workspace, step.stage, preset, flags, overrides.get(step.stage))


def command_line(step: Step, config: StageConfig, preset: str | None, overrides: list[str]) -> str:
    """The CLI command equivalent to one step (shown in the progress and the plan)."""
    words = ["pdiff", step.stage]
    for key, value in step.flags.items():
        value = getattr(config, key, value)
        if value is None or value is False:
            continue
        flag = FLAG_NAMES.get(key, "--" + key.replace("_", "-"))
        if value is True:
            words.append(flag)
        elif isinstance(value, list) and step.stage == "report":
            words += [w for v in value for w in (flag, str(v))]
        elif key in ("diffuse_runs", "pretrain_runs"):  # no flag of their own
            words += ["--set", f"{key}=[{','.join(map(str, value))}]"]
        elif key == "zero_shot_source":  # no flag of its own
            words += ["--set", f"{key}={value}"]
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    if preset and step.stage != "report":
        words += ["--preset", preset]
    return " ".join(words + [f"--set {o}" for o in overrides])


def finished_collects(workspace: Workspace, step: Step, config: StageConfig) -> list[Run]:
    """The finished collects of `config`'s settings, whichever kinds they collected."""
    matches = same_config("collect", config, step.ignore)
    runs = list_runs(workspace, "collect", step.family)
    return [r for r in runs if r.status is RunStatus.FINISHED and matches(r)]


def find_done(workspace: Workspace, step: Step, config: StageConfig) -> Run | None:
    """The finished run a step reuses, or None."""
    if isinstance(config, CollectConfig):  # several finished collects may together hold every kind
        runs = finished_collects(workspace, step, config)
        held = {k for r in runs for k in r.config.get("kinds", [])}
        return runs[-1] if runs and set(config.kinds) <= held else None
    matches = same_config(step.stage, config, step.ignore)
    extra = step.extra_match
    return finished_match(
        workspace,
        step.stage,
        step.family,
        lambda r: matches(r) and (extra is None or extra(workspace, config, r)),
    )


def collect_config(workspace: Workspace, step: Step, config: CollectConfig) -> CollectConfig:
    """Collect only the kinds no finished collect of the same settings holds (datasets are never
    rewritten)."""
    held = {k for r in finished_collects(workspace, step, config) for k in r.config.get("kinds", [])}
    missing = [k for k in config.kinds if k not in held]
    return config.model_copy(update={"kinds": missing}) if missing else config


@dataclass
class ResolvedStep:
    """A step ready to start: its resolved config and command, and the finished run to reuse or stale one to
    resume."""

    config: StageConfig
    command: str
    done: Run | None = None
    stale: Run | None = None

    def announce(self, prefix: str) -> None:
        if self.done is not None:
            line = f"{prefix} skip (finished {self.done.run_id}): {self.command}"
        elif self.stale is not None:
            line = f"{prefix} resume {self.stale.run_id}: {self.command} --resume {self.stale.run_id}"
        else:
            line = f"{prefix} run: {self.command}"
        err.print(line, highlight=False, soft_wrap=True)


def resolve_step(
    workspace: Workspace,
    step: Step,
    preset: str | None,
    grouped: dict[str, list[str]],
    ids: dict[Step, str],
    configs: dict[Step, StageConfig],
) -> ResolvedStep:
    """Resolve a step whose upstream steps are done (`ids`, `configs`) and find what it can reuse or
    resume."""
    config = step_config(workspace, step, preset, grouped, ids, configs)
    configs[step] = config
    command = command_line(step, config, preset, grouped.get(step.stage, []))
    done = find_done(workspace, step, config)
    if done is not None:
        return ResolvedStep(config, command, done=done)
    if isinstance(config, CollectConfig):
        config = collect_config(workspace, step, config)
        command = command_line(step, config, preset, grouped.get(step.stage, []))
    matches = same_config(step.stage, config, step.ignore - {"kinds"})
    return ResolvedStep(config, command, stale=interrupted_match(workspace, step.stage, step.family, matches))


def reused(step: Step, run: Run) -> StepResult:
    return StepResult(step.key, "reused", run.run_id, run.manifest.get("summary"))


def run_in_order(
    workspace: Workspace,
    steps: list[Step],
    *,
    preset: str | None,
    argv: list[str],
    overrides: list[str] | None = None,
    dry_run: bool = False,
) -> tuple[list[StepResult], Run | None]:
    """Reuse, resume or run (with `dry_run`: only announce) each step in order; the results and the report
    run."""
    grouped = split_overrides(overrides or [])
    ids: dict[Step, str] = {}
    configs: dict[Step, StageConfig] = {}
    results: list[StepResult] = []
    report: Run | None = None
    for number, step in enumerate(steps, 1):
        ready = resolve_step(workspace, step, preset, grouped, ids, configs)
        ready.announce(f"[{number}/{len(steps)}]")
        if ready.done is not None:
            ids[step], run = ready.done.run_id, ready.done
            results.append(reused(step, run))
        elif dry_run:
            ids[step] = f"<{step.key}>"
            results.append(StepResult(step.key, "planned"))
            continue
        else:
            stale = ready.stale
            run = run_stage(workspace, step.stage, ready.config, argv, resume=stale.run_id if stale else None)
            ids[step] = run.run_id
            state = "resumed" if stale else "ran"
            results.append(StepResult(step.key, state, run.run_id, run.manifest.get("summary")))
        if step.stage == "report":
            report = run
    return results, report
