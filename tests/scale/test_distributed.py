"""torchrun with two gloo processes gives the single-process result: diffuse (per-loss gradient averaging,
sharded Prompt-DT scoring) and tune (sharded seed x task jobs). The pretrain case is in tests/stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support.stages import FAMILY, run_smoke
from support.weights import assert_same_weights, latest_weights

from pdiff.data.prompts_file import read_prompts
from pdiff.workspace.runs import RunStatus, list_runs

pytestmark = pytest.mark.metaworld


def _torchrun(ws, *args: str) -> None:
    env = {**os.environ, "PDIFF_WORKSPACE": str(ws.root), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "pdiff",
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _newest(ws, stage: str, other_than: str):
    run = [r for r in list_runs(ws, stage) if r.run_id != other_than][-1]
    assert run.status is RunStatus.FINISHED
    return run


def test_diffuse_and_tune_under_torchrun_match_one_process(pretrained):
    reach_ws, _ = pretrained
    single, _ = run_smoke(reach_ws, "diffuse")
    _torchrun(reach_ws, "diffuse", "--env", FAMILY, "--preset", "smoke")
    ddp = _newest(reach_ws, "diffuse", single.run_id)
    assert_same_weights(latest_weights(ddp.dir), latest_weights(single.dir), rtol=1e-4, atol=1e-5)
    logged = [
        [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
        for run in (single, ddp)
    ]
    for a, b in zip(*logged, strict=True):
        assert a["loss_plm"] == pytest.approx(b["loss_plm"], rel=1e-4) and a["loss_dm"] == pytest.approx(
            b["loss_dm"]
        )

    tuned, _ = run_smoke(reach_ws, "tune", seeds=[0, 1], diffuse_run=single.run_id)
    _torchrun(
        reach_ws, "tune", "--env", FAMILY, "--preset", "smoke", "--seeds", "0,1", "--diffuse", single.run_id
    )
    sharded = _newest(reach_ws, "tune", tuned.run_id)
    expected, got = read_prompts(tuned.dir / "prompts.h5")[0], read_prompts(sharded.dir / "prompts.h5")[0]
    assert got.keys() == expected.keys() and len(got) == 10  # 2 seeds x 5 test tasks, from both ranks
    for job in expected:
        np.testing.assert_array_equal(got[job].states, expected[job].states, err_msg=str(job))
        np.testing.assert_array_equal(got[job].actions, expected[job].actions, err_msg=str(job))
