"""The lock file of a run directory: only the process holding it may write the run, and a RUNNING run whose
lock is free was killed without a chance to say so (stale)."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from pdiff.errors import PdiffError

LOCK_NAME = ".lock"
LOCK_WAIT_S = 2.0


def lock_is_held(run_dir: Path) -> bool:
    probe = FileLock(str(run_dir / LOCK_NAME), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


def acquire_run_lock(run_dir: Path, run_id: str) -> FileLock:
    # Wait a little: `pdiff status` probes locks by taking them for an instant, which must not make a
    # starting resume fail. A run in progress holds its lock for much longer, so its rival still fails.
    lock = FileLock(str(run_dir / LOCK_NAME), timeout=LOCK_WAIT_S)
    try:
        lock.acquire()
    except Timeout as exc:
        raise PdiffError(
            f"run {run_id} is being written by another pdiff process",
            hint="wait for it to finish (see `pdiff status`), or work in another run",
        ) from exc
    return lock
