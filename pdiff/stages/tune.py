"""`pdiff tune`: adapt to each test task from N few-shot episodes, for every seed; the PLM stays frozen.

Prompt-based methods store one prompt per (seed, test task) in `prompts.h5` (states normalised as the
frozen Prompt-DT reads them); `pdiff eval` then evaluates the run with those prompts.
"""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Any, Literal

import numpy as np
from pydantic import Field

from pdiff.config import StageConfig, register_stage_config
from pdiff.console import StageProgress
from pdiff.data.batches import Segments
from pdiff.data.prompts_file import write_prompts
from pdiff.diffusion import VPSchedule
from pdiff.distributed import resolve_device
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.eval.rollout import load_policy
from pdiff.methods import prompt_diffuser, prompt_dt
from pdiff.methods.base import TaskContext, load_fewshot
from pdiff.methods.prompt_diffuser import SegmentCodec
from pdiff.models.checkpoint import load_inference
from pdiff.models.denoiser import Denoiser, DenoiserConfig
from pdiff.stages.common import checkpoint_of, open_run, stage_run
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run, latest_finished, require_finished

METHODS: dict[str, ModuleType] = {"prompt-dt": prompt_dt, "prompt-diffuser": prompt_diffuser}
NEEDS_DIFFUSE = {"prompt-diffuser"}


class TuneConfig(StageConfig):
    env: str | None = Field(None, description="Task family (default: that of the input run).")
    method: Literal["prompt-diffuser", "prompt-dt"] = Field("prompt-diffuser", description="Tuning method.")
    shots: int = Field(5, ge=1, description="Few-shot episodes per test task.")
    data_kind: str = Field("expert", description="Quality of the few-shot data: expert | medium | random.")
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="Seeds (one adaptation per seed and task).")
    diffuse_run: str | None = Field(
        None, description="Diffusion model (prompt-diffuser; default: latest finished)."
    )
    pretrain_run: str | None = Field(
        None, description="Frozen Prompt-DT (default: the diffuse run's, or latest)."
    )
    adapt: Literal["finetune", "condition-only"] = Field(
        "finetune", description="prompt-diffuser: fine-tune on the few-shot data, or only condition on it."
    )
    steps: int = Field(200, ge=0, description="Fine-tuning steps per (seed, task).")
    batch_size: int = Field(32, ge=1, description="Segments per fine-tuning step.")
    lr: float = Field(1e-4, gt=0, description="Fine-tuning learning rate.")
    guidance: str | None = Field(None, description="Guidance rule while tuning (default: the diffuse run's).")
    lam: float | None = Field(None, ge=0, description="λ while tuning (default: the diffuse run's).")
    grad_clip: float | None = Field(1.0, gt=0, description="Gradient-norm clip while tuning.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N.")


register_stage_config("tune", TuneConfig)


def resolve_inputs(workspace: Workspace, config: TuneConfig) -> tuple[Run, Run | None]:
    """(pretrain run, diffuse run or None), all FINISHED."""
    diffuse = None
    if config.method in NEEDS_DIFFUSE:
        if config.diffuse_run:
            diffuse = require_finished(find_run(workspace, config.diffuse_run, "diffuse"))
        elif config.env:
            diffuse = require_finished(latest_finished(workspace, "diffuse", get_family(config.env).name))
        else:
            raise UsageError("no diffusion model to tune", hint="pass --env FAMILY or --diffuse RUN")
        pretrain = require_finished(find_run(workspace, diffuse.config["pretrain_run"], "pretrain"))
    elif config.pretrain_run:
        pretrain = require_finished(find_run(workspace, config.pretrain_run, "pretrain"))
    elif config.env:
        pretrain = require_finished(latest_finished(workspace, "pretrain", get_family(config.env).name))
    else:
        raise UsageError("no Prompt-DT to tune", hint="pass --env FAMILY or --pretrain RUN")
    return pretrain, diffuse


def diffuser_settings(config: TuneConfig, diffuse: Run, device: Any) -> dict[str, Any]:
    def build(payload: dict[str, Any]) -> Denoiser:
        return Denoiser(DenoiserConfig.from_dict(payload["architecture"]))

    trained, payload = load_inference(checkpoint_of(diffuse), build)
    trained.to(device)
    return {
        "denoiser_factory": lambda: copy.deepcopy(trained),
        "schedule": VPSchedule(**payload["schedule"]),
        "codec": SegmentCodec(**payload["codec"]),
        "adapt": config.adapt,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "guidance": config.guidance or payload["guidance"],
        "lam": config.lam if config.lam is not None else payload["lam"],
        "grad_clip": config.grad_clip,
    }


def tune(
    run: Run, workspace: Workspace, config: TuneConfig, pretrain: Run, diffuse: Run | None
) -> dict[str, Any]:
    family = get_family(config.env or "")
    device = resolve_device(config.device)
    policy, _ = load_policy(checkpoint_of(pretrain), device)
    tasks = list(family.test_tasks)
    fewshot = load_fewshot(workspace.datasets_dir, family.name, tasks, config.data_kind, config.shots)
    sampler, bank = policy.segment_sampler(fewshot), policy.prompt_bank(fewshot)
    settings = diffuser_settings(config, diffuse, device) if diffuse is not None else {}
    method = METHODS[config.method]
    prompts: dict[tuple[int, int], Segments] = {}
    per_task: dict[str, Any] = {}
    tunable = 0
    with StageProgress(f"tune {config.method} {family.name}", total=len(config.seeds) * len(tasks)) as bar:
        for seed in config.seeds:
            for task in tasks:
                context = TaskContext(seed=seed, task=task, policy=policy, fewshot=sampler, fewshot_prompts=bank,
                                      rng=np.random.default_rng([seed, task, 3]), device=device,
                                      out_dir=run.dir / "tuned", settings=settings)  # fmt: skip
                result = method.tune_task(context)
                prompts[(seed, task)] = result.prompt
                tunable = result.tunable_parameters
                per_task[f"seed-{seed}/task-{task:02d}"] = result.metrics
                bar.update(1, task=task)
    write_prompts(run.dir / "prompts.h5", prompts, {"method": config.method, "states": "normalised",
                                                    "returns_to_go": "divided by rtg_scale"})  # fmt: skip
    run.record_output(run.dir / "prompts.h5", "prompts")
    if (run.dir / "tuned").is_dir():
        run.record_output(run.dir / "tuned", "tuned_weights")
    plm_parameters = sum(p.numel() for p in policy.model.parameters())
    return {"method": config.method, "tunable_parameters": tunable, "plm_parameters": plm_parameters,
            "tunable_share_percent": 100.0 * tunable / plm_parameters, "shots": config.shots,
            "data_kind": config.data_kind, "seeds": config.seeds, "per_task": per_task}  # fmt: skip


def run_tune(
    workspace: Workspace, config: TuneConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run, dict[str, Any]]:
    if resume is not None:  # tuning is redone from the start, with the run's recorded config and inputs
        config = TuneConfig.model_validate(find_run(workspace, resume, "tune").config)
    pretrain, diffuse = resolve_inputs(workspace, config)
    family = get_family(config.env or pretrain.family or "")
    tasks = list(family.test_tasks)
    load_fewshot(
        workspace.datasets_dir, family.name, tasks, config.data_kind, config.shots
    )  # fail before a run
    update = {
        "env": family.name,
        "pretrain_run": pretrain.run_id,
        "diffuse_run": diffuse.run_id if diffuse else None,
    }
    config = config.model_copy(update=update)
    run, config = open_run(workspace, "tune", config, argv=argv, family=family.name, seed=config.seeds[0],
                           slug=f"{family.name}-{config.method}", resume=resume)  # fmt: skip
    with stage_run(run):
        run.record_input("pretrain", pretrain.run_id, None)
        if diffuse is not None:
            run.record_input("diffuse", diffuse.run_id, None)
        summary = tune(run, workspace, config, pretrain, diffuse)
        run.manifest["summary"].update({k: v for k, v in summary.items() if k != "per_task"})
        run.save()
    return run, summary
