"""pdiff from Python: what a researcher does from a notebook rather than a shell (docs/api.md).

Everything here reads or uses what the CLI wrote into a workspace; nothing here writes a run. The names in
`__all__` are the public API; the rest of pdiff is internal and may change between versions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pdiff.compute import Compute, use_precision
from pdiff.data.batches import Segments
from pdiff.data.fewshot import load_fewshot
from pdiff.data.loader import FamilyData
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.results.cells import ReportData, gather
from pdiff.results.report_json import read_report as _read_report
from pdiff.rollouts.rollout import EpisodeResult, FrozenPolicy, load_policy
from pdiff.rollouts.rollout import rollout as _rollout
from pdiff.stages.common import checkpoint_of
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import RunStatus, find_run, latest_finished, list_runs, require_finished

__all__ = [
    "EpisodeResult",
    "FrozenPolicy",
    "ReportData",
    "Segments",
    "Workspace",
    "as_frame",
    "fewshot_episodes",
    "generate_prompts",
    "load_prompt_dt",
    "open_workspace",
    "read_report",
    "real_prompts",
    "results",
    "rollout",
    "runs",
]


def open_workspace(path: str | os.PathLike[str] = "workspace") -> Workspace:
    """An existing workspace (a clear error when `path` is not one)."""
    return Workspace.open(Path(path))


def runs(workspace: Workspace, stage: str | None = None, family: str | None = None) -> list[dict[str, Any]]:
    """One record per run (oldest first): id, stage, family, status, start, duration, config and summary."""
    return [
        {
            "run_id": run.run_id,
            "stage": run.stage,
            "family": run.family,
            "status": run.status.value,
            "created_at": run.manifest.get("created_at"),
            "duration_s": run.manifest.get("duration_s"),
            "config": run.config,
            "summary": run.manifest.get("summary", {}),
        }
        for run in list_runs(workspace, stage, family)
    ]


def results(workspace: Workspace, family: str | None = None) -> list[dict[str, Any]]:
    """One record per report cell (the newest finished eval run of each family, method, variant, data kind
    and shot count), as `pdiff report` reads them: scores as mean ± std over seeds with their per-seed
    (seeds × tasks) matrices, budgets and the runs behind."""
    if not any(run.status is RunStatus.FINISHED for run in list_runs(workspace, "eval", family)):
        return []
    data = gather(workspace, envs=[family] if family else None)
    return [result.to_dict() for result in data.results]


def read_report(path: str | os.PathLike[str]) -> ReportData:
    """A report.json that `pdiff report` wrote (e.g. one under docs/results/), one Result per cell."""
    return _read_report(Path(path))


def as_frame(records: list[dict[str, Any]]) -> Any:  # a pandas DataFrame
    """`records` (from `runs` or `results`) as a pandas DataFrame, nested fields flattened with dots."""
    try:
        import pandas
    except ImportError:
        raise UsageError("as_frame needs pandas", hint="pip install pandas") from None
    return pandas.json_normalize(records)


def load_prompt_dt(
    workspace: Workspace, run: str | None = None, *, family: str | None = None, precision: str = "fp32"
) -> FrozenPolicy:
    """The frozen Prompt-DT of a finished pretrain run (`run`, or the latest of `family`), on the CPU."""
    if run is None and family is None:
        raise UsageError("load_prompt_dt needs a run or a family", hint="e.g. family='metaworld-reach'")
    source = (
        require_finished(find_run(workspace, run, "pretrain"))
        if run
        else latest_finished(workspace, "pretrain", get_family(str(family)).name)
    )
    policy, _ = load_policy(checkpoint_of(source), torch.device("cpu"))
    use_precision(policy.model, Compute("cpu", None, precision, "api", ""))
    return policy


def fewshot_episodes(
    workspace: Workspace, family: str, task: int, shots: int, *, seed: int = 0, kind: str = "expert"
) -> FamilyData:
    """Seed `seed`'s `shots` episodes of `task` (the episodes `pdiff tune --shots` gives that seed)."""
    return load_fewshot(workspace.datasets_dir, get_family(family).name, [task], kind, shots, seed)


def real_prompts(policy: FrozenPolicy, episodes: FamilyData, task: int) -> Segments:
    """The tail prompt of each episode of `task` in `episodes`, normalised as `policy` reads it (what the
    untuned prompt-dt baseline is evaluated with)."""
    return policy.prompt_bank(episodes).all_for_task(task)


def rollout(
    policy: FrozenPolicy,
    family: str,
    task: int,
    prompt: Segments,
    *,
    episodes: int = 1,
    seed: int = 0,
    horizon: int | None = None,
) -> list[EpisodeResult]:
    """`episodes` simulator episodes of `task` with each prompt row, all stepped together: returns, lengths
    and (Meta-World) success per episode."""
    env = get_family(family)
    count = len(prompt.states)
    resets = [[seed * 10_000 + row * episodes + e for e in range(episodes)] for row in range(count)]
    return _rollout(
        env, policy, prompt.to_prompt(), [task] * count, resets, horizon=env.resolve_horizon(horizon)
    )


def generate_prompts(
    workspace: Workspace,
    policy: FrozenPolicy,
    family: str,
    episodes: FamilyData,
    task: int,
    *,
    diffuse_run: str | None = None,
    steps: int = 30,
    lr: float = 1e-3,
    seed: int = 0,
) -> Segments:
    """Prompt Diffuser's prompt for `task`: a copy of a trained diffusion model (`diffuse_run`, or the latest
    of `family`) fine-tuned `steps` steps on `episodes` as `pdiff tune` does, then sampled, conditioned on a
    few-shot tail's returns-to-go and timesteps. `policy` must be the Prompt-DT that guided that model."""
    from pdiff.config import resolve_config
    from pdiff.methods.context import method_settings, task_context
    from pdiff.methods.prompt_diffuser import tune_task
    from pdiff.stages.tune import TuneConfig

    env = get_family(family)
    diffuse = (
        require_finished(find_run(workspace, diffuse_run, "diffuse"))
        if diffuse_run
        else latest_finished(workspace, "diffuse", env.name)
    )
    shots = len(episodes.task_episodes(task))
    flags = {
        "env": env.name,
        "method": "prompt-diffuser",
        "steps": steps,
        "lr": lr,
        "selection": "off",
        "seeds": [seed],
        "shots": shots,
        "device": "cpu",
    }
    config = resolve_config(TuneConfig, "tune", workspace=workspace, preset=None, flags=flags)
    settings = method_settings(config, env, checkpoint_of(diffuse), Compute("cpu", None, "fp32", "api", ""))
    scratch = workspace.root / ".cache" / "api"  # where tune_task saves the fine-tuned denoiser
    return tune_task(task_context(policy, episodes, seed, task, settings, policy.device, scratch)).prompt
