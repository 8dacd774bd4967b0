"""Run a training stage in-process at the smoke preset on Meta-World reach, as `pdiff <stage>` would."""

from __future__ import annotations

from typing import Any

from pdiff.config import resolve_config
from pdiff.stages.diffuse import DiffuseConfig, run_diffuse
from pdiff.stages.eval import EvalConfig, run_eval
from pdiff.stages.pretrain import PretrainConfig, run_pretrain
from pdiff.stages.tune import TuneConfig, run_tune
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run

FAMILY = "metaworld-reach"
_STAGES = {
    "pretrain": (PretrainConfig, run_pretrain),
    "diffuse": (DiffuseConfig, run_diffuse),
    "tune": (TuneConfig, run_tune),
    "eval": (EvalConfig, run_eval),
}


def smoke_config(ws: Workspace, stage: str, **flags: Any) -> Any:  # the stage's config model
    """The stage's config at the smoke preset on reach, `flags` as if given on the command line."""
    config_class, _ = _STAGES[stage]
    return resolve_config(config_class, stage, workspace=ws, preset="smoke", flags={"env": FAMILY, **flags})


def run_smoke(ws: Workspace, stage: str, **flags: Any) -> tuple[Run, dict]:
    """Run one stage to the end; (its run, its summary)."""
    _, run = _STAGES[stage]
    return run(ws, smoke_config(ws, stage, **flags), argv=["pdiff", stage])
