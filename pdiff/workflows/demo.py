"""`pdiff demo`: one family from nothing to a report, as a small plan of `pdiff reproduce`'s steps."""

from __future__ import annotations

from pdiff.envs import get_family
from pdiff.workflows.pipeline import pretrain_datasets_match, run_in_order
from pdiff.workflows.steps import Step, StepResult
from pdiff.workspace.root import Workspace


def demo_steps(family: str) -> list[Step]:
    """Each step names its upstream steps, so a finished run is reused only when its stage, family and
    resolved config (inputs included) are the ones the demo asks for."""
    env = {"env": family}
    # The kinds the demo reads (reproduce's rule for expert few-shot data): a collect holding them counts.
    kinds = ["expert", "prompt-expert"]
    collect = Step("collect", "collect", family, {**env, "kinds": kinds}, ignore=frozenset({"kinds"}))
    pretrain = Step("pretrain", "pretrain", family, env, extra_match=pretrain_datasets_match)
    fewshot = Step(
        "eval prompt-dt (few-shot prompt)",
        "eval",
        family,
        {**env, "pretrain_run": pretrain, "prompt": "fewshot"},
    )
    control = Step(
        "eval random prompt (control)", "eval", family, {**env, "pretrain_run": pretrain, "prompt": "random"}
    )
    diffuse = Step("diffuse", "diffuse", family, {**env, "pretrain_run": pretrain})
    tune_flags = {**env, "method": "prompt-diffuser", "pretrain_run": pretrain, "diffuse_run": diffuse}
    tune = Step("tune prompt-diffuser", "tune", family, tune_flags)
    diffuser = Step("eval prompt-diffuser", "eval", family, {**env, "tune_run": tune})
    report = Step("report", "report", None, {"runs": [fewshot, control, diffuser]})
    return [collect, pretrain, fewshot, control, diffuse, tune, diffuser, report]


def run_demo(workspace: Workspace, env: str, preset: str, argv: list[str]) -> list[StepResult]:
    """Run each step unless a finished run of exactly its settings exists, then a report of the
    evaluations."""
    return run_in_order(workspace, demo_steps(get_family(env).name), preset=preset, argv=argv)[0]
