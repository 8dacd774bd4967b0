"""`pdiff sweep`: print or run the family x method x seed matrix as independent jobs."""

from __future__ import annotations

import typer

from pdiff.cli.app import app, options
from pdiff.cli.flags import PRESET, parse_ids, parse_names
from pdiff.cli.inspect_cmds import JSON_OPTION, emit
from pdiff.console import next_step, out
from pdiff.errors import UsageError


@app.command()
def sweep(
    ctx: typer.Context,
    envs: list[str] = typer.Option(
        ..., "--env", "--envs", metavar="FAMILY,…", help="Task families, e.g. metaworld-reach,cheetah-vel."
    ),
    methods: list[str] = typer.Option(
        ["prompt-diffuser,prompt-dt"], "--methods", metavar="METHOD,…", help="Tune methods."
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", metavar="SEEDS", help="Seeds, e.g. 0,1,2 or 0-4."),
    launcher: str = typer.Option("print", "--launcher", help="print (shell lines for a scheduler) | local."),
    jobs: int = typer.Option(1, "--jobs", help="local: cells run at the same time."),
    only: str = typer.Option("all", "--only", help="all | shared (collect, pretrain, diffuse) | cells."),
    preset: str | None = PRESET,
    json_flag: bool = JSON_OPTION,
) -> None:
    """Tune and evaluate every (family, method, seed) cell as an independent job, after the shared stages."""
    from pdiff.workflows.sweep import (
        cell_command,
        launch_local,
        matrix,
        run_cell,
        shared_commands,
        shell_line,
    )

    opts = options(ctx)
    if launcher not in ("print", "local") or only not in ("all", "shared", "cells"):
        raise UsageError(
            f"--launcher {launcher} --only {only}", hint="use --launcher print|local --only all|shared|cells"
        )
    family_names, method_names = parse_names(envs) or [], parse_names(methods) or []
    cells = matrix(family_names, method_names, parse_ids(seeds, "--seeds") or [])
    shared = shared_commands(family_names, method_names, preset) if only != "cells" else []
    per_cell = [cell_command(cell, preset) for cell in cells] if only != "shared" else []
    if launcher == "print":  # --json: the same shell lines as a list of strings
        lines = [shell_line(opts.workspace, args) for args in shared + per_cell]
        emit(opts, json_flag, lines, lambda: out.print("\n".join(lines), highlight=False, soft_wrap=True))
        return
    if only == "cells" and len(cells) == 1:  # one cell, run here: what each launched or printed job does
        row = run_cell(opts.open_workspace(), cells[0], preset)
        emit(opts, json_flag, row, lambda: out.print(row))
        return
    launch_local(opts.workspace, shared, jobs=1)  # in order: each family's stages read the previous ones
    launch_local(opts.workspace, per_cell, jobs=jobs)
    next_step("pdiff ls --stage eval")
