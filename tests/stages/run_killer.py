"""Start a stage as a real subprocess and SIGKILL it once it has written a checkpoint at or past a step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, list_runs


def kill_after_checkpoint(
    ws: Workspace, stage: str, args: list[str], *, step: int, ignore: set[str], watch: str | None = None
) -> Run | None:
    """Run `pdiff <stage> <args>`; return the run killed after its checkpoint `step` (None if never reached).

    `watch` names the stage whose runs to watch when it is not `stage` (e.g. pretrain inside reproduce)."""
    env = {**os.environ, "PDIFF_WORKSPACE": str(ws.root)}
    command = [sys.executable, "-m", "pdiff", stage, *args]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed, deadline = None, time.time() + 180
    try:
        while killed is None and time.time() < deadline and child.poll() is None:
            for run in list_runs(ws, watch or stage):
                pointer = run.dir / "checkpoints" / "latest.json"
                if (
                    run.run_id not in ignore
                    and pointer.is_file()
                    and json.loads(pointer.read_text())["step"] >= step
                ):
                    killed = run
            time.sleep(0.02)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
    return killed
