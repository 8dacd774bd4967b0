"""`pdiff tune`: adapt to each test task from N few-shot episodes, for every seed (N = 0: zero-shot, from the
training tasks' prompts alone; pdiff.methods.zero_shot).

Every method stores the prompts of each (seed, test task) in `prompts.h5` (states normalised as the frozen
Prompt-DT reads them): one, or where the family's resets do not vary, one per few-shot episode for the methods
whose prompt comes from the few-shot data (prompt-dt, prompt-diffuser, and the weight-tuning methods' tuned
models are rolled out with each few-shot prompt); ptdt keeps the one prompt it learns. Weight-changing methods
(soft-prompt, adaptor, lora, full-ft) also store their tuned tensors per (seed, task) in
`tuned/seed-S/task-NN.safetensors`; `pdiff eval` rebuilds each task's model from the frozen Prompt-DT plus
that file (pdiff.methods.finetuning). The frozen Prompt-DT itself never changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, create_model

from pdiff.config import register_stage_config
from pdiff.data.fewshot import fewshot_record, load_fewshot, tasks_kind
from pdiff.distributed import DistInfo
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError
from pdiff.methods.adaptations import adapt_all, load_target_data, write_tuned_prompts
from pdiff.methods.progress import clear_progress
from pdiff.methods.registry import NEEDS_DIFFUSE, option_sections
from pdiff.methods.shared_config import SharedTuneConfig
from pdiff.methods.zero_shot import ZeroShotPrompts, check_zero_shot
from pdiff.stages.common import (
    checkpoint_of,
    distributed_run,
    load_policies,
    open_run,
    record_runs,
    run_compute,
    runs_per_seed,
    stage_run,
)
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run, latest_finished, require_finished

# One section per method with options of its own, named as the method: `--set ptdt.population=15`. A section
# of another method than the one tuned is recorded but not read.
SECTIONS = {
    name: (model, Field(default_factory=model, description=f"{name}'s own options."))
    for name, model in option_sections().items()
}
TuneConfig = create_model("TuneConfig", __base__=SharedTuneConfig, __module__=__name__, **SECTIONS)
register_stage_config("tune", TuneConfig)


def resolve_inputs(workspace: Workspace, config: TuneConfig) -> tuple[dict[int, Run], dict[int, Run] | None]:
    """(the Prompt-DT of each seed, the diffusion model of each seed or None), all FINISHED."""
    diffuse = None
    if config.method in NEEDS_DIFFUSE:
        if config.diffuse_runs:  # their Prompt-DTs are checked below, against each seed's
            diffuse = runs_per_seed(
                workspace, "diffuse", config.seeds, config.diffuse_runs, frozenset({"pretrain_run"})
            )
        elif config.diffuse_run:
            diffuse = dict.fromkeys(
                config.seeds, require_finished(find_run(workspace, config.diffuse_run, "diffuse"))
            )
        elif config.env:
            latest = require_finished(latest_finished(workspace, "diffuse", get_family(config.env).name))
            diffuse = dict.fromkeys(config.seeds, latest)
        else:
            raise UsageError("no diffusion model to tune", hint="pass --env FAMILY or --diffuse RUN")
    if config.pretrain_runs:
        pretrain = runs_per_seed(workspace, "pretrain", config.seeds, config.pretrain_runs)
    else:
        if diffuse is not None:
            sources = {run.config["pretrain_run"] for run in diffuse.values()}
            if len(sources) > 1:
                raise UsageError(
                    "the diffusion models were guided by different Prompt-DTs "
                    f"({', '.join(sorted(sources))})",
                    hint="give diffuse_runs trained from one pretrain run, or each seed's in pretrain_runs",
                )
            shared = find_run(workspace, sources.pop(), "pretrain")
        elif config.pretrain_run:
            shared = find_run(workspace, config.pretrain_run, "pretrain")
        elif config.env:
            shared = latest_finished(workspace, "pretrain", get_family(config.env).name)
        else:
            raise UsageError("no Prompt-DT to tune", hint="pass --env FAMILY or --pretrain RUN")
        pretrain = dict.fromkeys(config.seeds, require_finished(shared))
    for seed, run in (diffuse or {}).items():
        if run.config["pretrain_run"] != pretrain[seed].run_id:
            raise UsageError(
                f"the diffusion model of seed {seed} ({run.run_id}) was guided by "
                f"{run.config['pretrain_run']}, not by that seed's Prompt-DT {pretrain[seed].run_id}",
                hint="give each seed the diffusion model trained from its own Prompt-DT",
            )
    return pretrain, diffuse


# The methods whose prompts are compared on training tasks (the generator's fidelity, docs/study.md).
FIDELITY_METHODS = ("prompt-diffuser", "prompt-dt")


def tune_tasks(config: TuneConfig, family: TaskFamily) -> list[int]:
    """The tasks to adapt to: `tasks`, checked, or the family's test tasks."""
    if config.tasks is None:
        return list(family.test_tasks)
    tasks = list(dict.fromkeys(family.check_task_id(t) for t in config.tasks))
    trained_on = [t for t in tasks if t not in family.test_tasks]
    if trained_on and config.method not in FIDELITY_METHODS:
        raise UsageError(
            f"tasks: {trained_on[0]} is a training task of {family.name}, and {config.method} "
            f"tunes on test tasks only",
            hint=f"methods that may: {', '.join(FIDELITY_METHODS)}; "
            f"test tasks: {', '.join(map(str, family.test_tasks))}",
        )
    if trained_on and not config.shots:
        raise UsageError(
            f"tasks: {trained_on[0]} is a training task of {family.name}, and shots=0 has no "
            "few-shot data to tune on",
            hint="use --shots N with N ≥ 1",
        )
    return tasks


def tune(
    run: Run | None,
    workspace: Workspace,
    config: TuneConfig,
    pretrain: dict[int, Run],
    diffuse: dict[int, Run] | None,
    info: DistInfo = DistInfo(),
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """Every (seed, task) adaptation (pdiff.methods.adaptations); under torchrun each rank takes a share of
    them and rank 0 writes all."""
    run_dir = run.dir if run is not None else run_dir
    assert run_dir is not None
    family = get_family(config.env or "")
    compute = run_compute(config, workspace, run, info)
    policies = load_policies(pretrain, compute.torch_device, family.name, compute)
    tasks = tune_tasks(config, family)
    prompt_dts = {seed: source.run_id for seed, source in pretrain.items()}
    target = load_target_data(workspace.datasets_dir, family, tasks, config, policies, prompt_dts)
    diffusion = {seed: checkpoint_of(diffuse[seed]) if diffuse else None for seed in config.seeds}
    adapted = adapt_all(config, family, tasks, policies, target, diffusion, compute, run_dir, info)
    if run is None or adapted is None:  # a non-zero rank: rank 0 writes every rank's prompts
        return {}
    write_tuned_prompts(run.dir / "prompts.h5", adapted, config.method)
    run.record_output(run.dir / "prompts.h5", "prompts")
    if (run.dir / "tuned").is_dir():
        run.record_output(run.dir / "tuned", "tuned_weights")
    tunable, per_task = adapted.tunable_parameters, adapted.metrics
    plm_parameters = sum(p.numel() for p in policies[config.seeds[0]].model.parameters())
    distances = [m["prompt_state_rms"] for m in per_task.values() if "prompt_state_rms" in m]
    extra = {"prompt_state_rms": float(np.mean(distances))} if distances else {}
    recorded = {"selection": adapted.selection.to_dict()} if adapted.selection is not None else {}
    return {
        **extra,
        **recorded,
        "method": config.method,
        "tunable_parameters": tunable,
        "plm_parameters": plm_parameters,
        "tunable_share_percent": 100.0 * tunable / plm_parameters,
        "shots": config.shots,
        "data_kind": config.data_kind,
        "seeds": config.seeds,
        "per_task": per_task,
        "tasks": tasks,
        "tasks_kind": tasks_kind(family, tasks),
        **inputs_record(run, workspace, family, tasks, config, target.sources),
    }


def inputs_record(
    run: Run,
    workspace: Workspace,
    family: TaskFamily,
    tasks: list[int],
    config: TuneConfig,
    zero_shot: dict[int, ZeroShotPrompts],
) -> dict[str, Any]:
    """The summary's account of the target data: the few-shot episodes each seed used, or, zero-shot, what its
    setting lets both methods read of the training tasks (whose datasets become the run's inputs)."""
    if config.shots:
        return {
            "fewshot_episodes": fewshot_record(
                workspace.datasets_dir, family.name, tasks, config.data_kind, config.shots, config.seeds
            )
        }
    read = dict.fromkeys(d for prompts in zero_shot.values() for d in prompts.read(tasks))
    run.record_inputs("dataset", read)
    return {"zero_shot": zero_shot[config.seeds[0]].record(tasks)}


def run_tune(
    workspace: Workspace, config: TuneConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run | None, dict[str, Any]]:
    """The stage. Under torchrun, rank 0 owns the run and every rank adapts its share of (seed, task) jobs."""

    def open_tune(config: TuneConfig) -> tuple[Run, TuneConfig]:
        if resume is not None:  # its recorded config and inputs (finished trials and adaptations are kept)
            config = TuneConfig.model_validate(find_run(workspace, resume, "tune").config)
        check_zero_shot(config.method, config.shots)
        pretrain, diffuse = resolve_inputs(workspace, config)
        first = pretrain[config.seeds[0]]
        family = get_family(config.env or first.family or "")
        tasks = tune_tasks(config, family)
        if config.shots:  # fail before a run
            load_fewshot(workspace.datasets_dir, family.name, tasks, config.data_kind, config.shots)
        update = {
            "env": family.name,
            "pretrain_run": first.run_id,
            "pretrain_runs": [pretrain[s].run_id for s in config.seeds] if config.pretrain_runs else None,
            "diffuse_run": diffuse[config.seeds[0]].run_id if diffuse else None,
            "diffuse_runs": [diffuse[s].run_id for s in config.seeds] if config.diffuse_runs else None,
        }
        config = config.model_copy(update=update)
        slug = f"{family.name}-{config.method}"
        return open_run(
            workspace,
            "tune",
            config,
            argv=argv,
            family=family.name,
            seed=config.seeds[0],
            slug=slug,
            resume=resume,
        )

    with distributed_run(config, open_tune) as ranks:
        run, config = ranks.run, ranks.config
        if run is None:
            pretrain, diffuse = resolve_inputs(workspace, config)
            return None, tune(None, workspace, config, pretrain, diffuse, ranks.info, ranks.dir)
        with stage_run(run):  # an input gone since the run opened fails the run, not leaves it running
            pretrain, diffuse = resolve_inputs(workspace, config)
            record_runs(run, "pretrain", pretrain.values())
            if diffuse:
                record_runs(run, "diffuse", diffuse.values())
            summary = tune(run, workspace, config, pretrain, diffuse, ranks.info)
            run.manifest["summary"].update({k: v for k, v in summary.items() if k != "per_task"})
            run.save()
            clear_progress(run.dir)
        return run, summary
