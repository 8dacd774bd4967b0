"""Running a pdiff command under torchrun (two gloo processes, one thread each) and finding its run."""

from __future__ import annotations

import os
import subprocess
import sys

from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, RunStatus, list_runs


def run_torchrun(workspace: Workspace, *args: str) -> None:
    env = {**os.environ, "PDIFF_WORKSPACE": str(workspace.root), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*torchrun, "-m", "pdiff", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def newest_finished(workspace: Workspace, stage: str, other_than: str) -> Run:
    """The newest `stage` run but `other_than` (the single-process run it is compared with), finished."""
    run = [r for r in list_runs(workspace, stage) if r.run_id != other_than][-1]
    assert run.status is RunStatus.FINISHED
    return run
