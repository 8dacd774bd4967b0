"""`pdiff sweep`: the family x method x seed matrix as independent `pdiff` jobs.

Per family, the shared stages run once (collect, pretrain, and diffuse when a method needs it); then every
cell (family, method, seed) is one job: `tune` for that seed, then `eval` of that tune run. Cells share
nothing but the finished upstream runs, so they can run in any order, on any machine that sees the
workspace: here (`--launcher local --jobs N`), or as printed lines for a scheduler (`--launcher print`,
e.g. one Slurm array task per line).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdiff.config import resolve_config
from pdiff.envs import get_family
from pdiff.errors import RunFailed, UsageError
from pdiff.methods.registry import METHODS, NEEDS_DIFFUSE
from pdiff.stages.eval import EvalConfig, run_eval
from pdiff.stages.tune import TuneConfig, run_tune
from pdiff.workspace.root import Workspace


@dataclass(frozen=True)
class Cell:
    env: str
    method: str
    seed: int


def matrix(envs: list[str], methods: list[str], seeds: list[int]) -> list[Cell]:
    for env in envs:
        get_family(env)  # an unknown family fails here, before any job starts
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}", hint=f"use one of: {', '.join(METHODS)}")
    if not (envs and methods and seeds):
        raise UsageError("an empty sweep", hint="pass --envs, --methods and --seeds, e.g. --seeds 0,1,2")
    return [Cell(env, method, seed) for env in envs for method in methods for seed in seeds]


def _preset(preset: str | None) -> list[str]:
    return ["--preset", preset] if preset else []


def shared_commands(envs: list[str], methods: list[str], preset: str | None) -> list[list[str]]:
    """The stages every cell of a family reads, in order (run them before the cells)."""
    commands = []
    for env in envs:
        commands += [
            ["collect", "--env", env, *_preset(preset)],
            ["pretrain", "--env", env, *_preset(preset)],
        ]
        if NEEDS_DIFFUSE & set(methods):
            commands.append(["diffuse", "--env", env, *_preset(preset)])
    return commands


def cell_command(cell: Cell, preset: str | None) -> list[str]:
    """The job of one cell: `pdiff sweep` narrowed to it, which runs tune + eval in its own process."""
    return [
        "sweep",
        "--envs",
        cell.env,
        "--methods",
        cell.method,
        "--seeds",
        str(cell.seed),
        "--only",
        "cells",
        "--launcher",
        "local",
        *_preset(preset),
    ]


def shell_line(workspace: Path, args: list[str]) -> str:
    return shlex.join(["pdiff", "-w", str(workspace), *args])


def run_cell(workspace: Workspace, cell: Cell, preset: str | None) -> dict[str, Any]:
    """tune (one seed) then eval of that tune run, in this process; the eval summary's headline."""
    tune_flags = {"env": cell.env, "method": cell.method, "seeds": [cell.seed]}
    tune_config = resolve_config(TuneConfig, "tune", workspace=workspace, preset=preset, flags=tune_flags)
    tuned, _ = run_tune(workspace, tune_config, argv=["pdiff", *cell_command(cell, preset)])
    if tuned is None:
        return {}  # a non-zero torchrun rank
    eval_flags = {"env": cell.env, "tune_run": tuned.run_id}
    eval_config = resolve_config(EvalConfig, "eval", workspace=workspace, preset=preset, flags=eval_flags)
    evaluated, summary = run_eval(workspace, eval_config, argv=["pdiff", *cell_command(cell, preset)])
    keys = ("return_mean", "success_rate_mean", "normalized_mean")
    return {
        "env": cell.env,
        "method": cell.method,
        "seed": cell.seed,
        "tune_run": tuned.run_id,
        "eval_run": evaluated.run_id,
        **{k: summary.get(k) for k in keys},
    }


def launch_local(workspace: Path, commands: list[list[str]], jobs: int) -> None:
    """Run `pdiff` commands as subprocesses, `jobs` at a time; fail after all finished if any failed."""

    def run(args: list[str]) -> int:
        return subprocess.run([sys.executable, "-m", "pdiff", "-q", "-w", str(workspace), *args]).returncode

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        codes = list(pool.map(run, commands))
    failed = [shlex.join(c) for c, code in zip(commands, codes, strict=True) if code != 0]
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(commands)} sweep jobs failed, first: pdiff {failed[0]}",
            hint="re-run the printed command alone to see its error",
        )
