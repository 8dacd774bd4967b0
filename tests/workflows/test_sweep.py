"""`pdiff sweep`: the printed matrix, and one cell (tune + eval of that tune run) run as a job would."""

from __future__ import annotations

import json

import pytest
from support.cli import runner

from pdiff.cli import app
from pdiff.workspace.runs import list_runs

FAMILY = "metaworld-reach"


def test_print_lists_shared_stages_then_one_line_per_cell(tmp_path):
    args = [
        "-w",
        str(tmp_path),
        "sweep",
        "--envs",
        "metaworld-reach,cheetah-vel",
        "--methods",
        "prompt-dt",
        "--seeds",
        "0-2",
        "--preset",
        "smoke",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 * 2 + 2 * 3  # collect + pretrain per family (no diffuse for prompt-dt), 6 cells
    assert lines[0].endswith("collect --env metaworld-reach --preset smoke")
    assert sum("--only cells --launcher local" in line for line in lines) == 6
    bad = runner.invoke(app, ["-w", str(tmp_path), "sweep", "--envs", FAMILY, "--methods", "nope"])
    assert bad.exit_code == 2 and "unknown method" in bad.stderr


@pytest.mark.metaworld
def test_one_cell_tunes_and_evaluates_that_tune_run(pretrained):
    reach_ws, _ = pretrained
    args = [
        "-w",
        str(reach_ws.root),
        "--json",
        "sweep",
        "--envs",
        FAMILY,
        "--methods",
        "prompt-dt",
        "--seeds",
        "1",
        "--only",
        "cells",
        "--launcher",
        "local",
        "--preset",
        "smoke",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["seed"] == 1 and row["method"] == "prompt-dt" and row["return_mean"] is not None
    evaluated = [r for r in list_runs(reach_ws, "eval") if r.run_id == row["eval_run"]]
    assert (
        evaluated
        and evaluated[0].config["tune_run"] == row["tune_run"]
        and evaluated[0].config["seeds"] == [1]
    )
