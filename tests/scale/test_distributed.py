"""torchrun with two gloo processes gives the single-process result: diffuse (per-loss gradient averaging,
sharded Prompt-DT scoring) and tune (sharded seed x task jobs). The pretrain case is in tests/stages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.distributed import newest_finished, run_torchrun
from support.stages import FAMILY, run_smoke
from support.weights import assert_same_weights, latest_weights

from pdiff.data.prompts_file import read_prompts

pytestmark = pytest.mark.metaworld


def test_diffuse_and_tune_under_torchrun_match_one_process(pretrained):
    reach_ws, _ = pretrained
    single, _ = run_smoke(reach_ws, "diffuse")
    run_torchrun(reach_ws, "diffuse", "--env", FAMILY, "--preset", "smoke")
    ddp = newest_finished(reach_ws, "diffuse", single.run_id)
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
    run_torchrun(
        reach_ws, "tune", "--env", FAMILY, "--preset", "smoke", "--seeds", "0,1", "--diffuse", single.run_id
    )
    sharded = newest_finished(reach_ws, "tune", tuned.run_id)
    expected, got = read_prompts(tuned.dir / "prompts.h5")[0], read_prompts(sharded.dir / "prompts.h5")[0]
    assert got.keys() == expected.keys() and len(got) == 10  # 2 seeds x 5 test tasks, from both ranks
    for job in expected:
        np.testing.assert_array_equal(got[job].states, expected[job].states, err_msg=str(job))
        np.testing.assert_array_equal(got[job].actions, expected[job].actions, err_msg=str(job))
