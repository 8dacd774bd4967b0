"""`pdiff demo`: the whole pipeline on one family, delegated to the demo workflow, its steps printed."""

from __future__ import annotations

import sys

import typer

from pdiff.cli.app import app, options
from pdiff.cli.inspect_cmds import JSON_OPTION, emit
from pdiff.cli.render import steps_table
from pdiff.console import err, next_step


@app.command()
def demo(
    ctx: typer.Context,
    env: str = typer.Option("metaworld-reach", "--env", help="Task family."),
    preset: str = typer.Option("quick", "--preset", help="smoke | quick | study | paper."),
    json_flag: bool = JSON_OPTION,
) -> None:
    """Run the whole pipeline on one family (creating the workspace if needed); finished stages are reused."""
    from pdiff.envs import get_family
    from pdiff.workflows.demo import run_demo
    from pdiff.workspace.root import Workspace

    opts = options(ctx)
    get_family(env)  # an unknown family fails before anything is created
    workspace, _ = Workspace.init(opts.workspace)
    results = run_demo(workspace, env, preset, ["pdiff", *sys.argv[1:]])
    payload = [r.__dict__ for r in results]

    title = f"demo: {env} ({preset}) in {workspace.root}"
    emit(opts, json_flag, payload, lambda: steps_table(title, results))
    for r in results:
        if r.step == "report" and r.summary:
            err.print(f"report: {workspace.root / r.summary['report']}")
    next_step("pdiff ls   (then `pdiff show RUN` for any run)")
