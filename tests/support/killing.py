"""SIGKILL (or SIGINT) a real `pdiff` process at a chosen point of its new run; the one kill harness of the
suite.

A kill that comes too late cannot pass silently: if the process finished (or its run was already FINISHED)
before the kill point was reached, `kill_at` fails the test, so a resume test always has work to resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pdiff.workspace.root import Workspace

KillPoint = Callable[[Path], bool]  # run directory -> "kill now"


def started(run_dir: Path) -> bool:
    return (run_dir / "run.json").is_file()


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of the run's latest checkpoint (None before the first)."""
    try:
        return int(json.loads((run_dir / "checkpoints" / "latest.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


def checkpoint_at(step: int) -> KillPoint:
    return lambda run_dir: (checkpoint_step(run_dir) or 0) >= step


def metrics_rows(count: int) -> KillPoint:
    def ready(run_dir: Path) -> bool:
        path = run_dir / "metrics.jsonl"
        return path.is_file() and path.read_text().count("\n") >= count

    return ready


def file_exists(pattern: str) -> KillPoint:
    return lambda run_dir: any(run_dir.glob(pattern))


def recorded_outputs(count: int) -> KillPoint:
    def ready(run_dir: Path) -> bool:
        try:
            return len(json.loads((run_dir / "run.json").read_text())["outputs"]) >= count
        except (OSError, ValueError, KeyError):
            return False

    return ready


def after(seconds: float, at_latest: KillPoint) -> KillPoint:
    """`seconds` after the run opened, or at `at_latest` if that comes first: a time point that leaves work to
    resume however fast the machine (a fixed delay outran a smoke diffusion on a fast CI runner)."""
    opened_at: dict[Path, float] = {}

    def ready(run_dir: Path) -> bool:
        if not started(run_dir):
            return False
        opened = opened_at.setdefault(run_dir, time.monotonic())
        return time.monotonic() - opened >= seconds or at_latest(run_dir)

    return ready


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


@dataclass
class Kill:
    run_id: str  # the run the killed process had opened
    run_dir: Path
    step: int | None  # its latest checkpoint's step when it was killed (None: no checkpoint yet)
    returncode: int  # -9 for SIGKILL; what the process chose for a signal it handles (130 for SIGINT)
    stderr: str


def kill_at(
    ws: Workspace,
    stage: str,
    args: list[str],
    point: KillPoint,
    *,
    watch: str | None = None,
    sig: signal.Signals = signal.SIGKILL,
    run_process: bool = False,
) -> Kill:
    """Run `pdiff <stage> <args>` in a subprocess and send it `sig` once its new run satisfies `point`.

    `watch` names the stage whose new run to watch when it is not `stage` (pretrain inside reproduce).
    `run_process`: signal the process that holds the run (its run.json's host pid: a `reproduce --jobs` child)
    instead, and let the command end on its own. Fails the test if the process ends, or its run finishes,
    before the kill."""
    stage_dir = ws.root / "runs" / (watch or stage)
    before = set(os.listdir(stage_dir)) if stage_dir.is_dir() else set()
    env = {**os.environ, "PDIFF_WORKSPACE": str(ws.root)}
    # A suite started in the background of a non-interactive shell (`make test &`) passes SIGINT on ignored,
    # and Python then installs no Ctrl-C handler: give the child the default, as a terminal would.
    child = subprocess.Popen(
        [sys.executable, "-m", "pdiff", stage, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    run_dir, reached, deadline = None, False, time.monotonic() + 240
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if run_dir is None and stage_dir.is_dir():
                new = sorted(set(os.listdir(stage_dir)) - before)
                run_dir = stage_dir / new[0] if new else None
            if run_dir is not None and point(run_dir):
                reached = True
                break
            time.sleep(0.005)
    finally:
        alive = child.poll() is None
        if alive and reached and run_process:
            os.kill(json.loads((run_dir / "run.json").read_text())["host"]["pid"], sig)
        elif alive:
            child.send_signal(sig if reached else signal.SIGKILL)
        try:
            _, stderr = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            _, stderr = child.communicate()
    detail = stderr.decode()[-2000:]
    assert alive, f"`pdiff {stage}` ended (exit {child.returncode}) before the kill point: {detail}"
    assert reached and run_dir is not None, f"`pdiff {stage}` never reached the kill point in 240 s: {detail}"
    assert _status(run_dir) != "FINISHED", (
        f"{run_dir.name} had finished before the kill: nothing to resume: {detail}"
    )
    return Kill(run_dir.name, run_dir, checkpoint_step(run_dir), child.returncode, stderr.decode())


_CREATE_THEN_DIE = """
import json, os, signal, sys, time
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import create_run
ws, stage, family, config, then = sys.argv[1:]
run = create_run(Workspace.open(ws), stage, config=json.loads(config), argv=["pdiff"], seed=0, family=family)
print(run.run_id, flush=True)
exec(then)
os.kill(os.getpid(), signal.SIGKILL)
"""


def stale_run(ws: Workspace, stage: str, family: str, config: dict | None = None, *, then: str = "") -> str:
    """Open a run in a child process that then runs the Python code `then` (with `run` and `time` in scope)
    and SIGKILLs itself: a run left RUNNING by a process that is gone, as after a crash. Its id."""
    child = subprocess.run(
        [sys.executable, "-c", _CREATE_THEN_DIE, str(ws.root), stage, family, json.dumps(config or {}), then],
        capture_output=True,
        text=True,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    return child.stdout.strip()
