"""Two pdiff processes on one workspace corrupt nothing; the loser of a run lock fails with a clear
message."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from reliability_tools import FAMILY, one_line_error
from support.cli import in_workspace, pdiff_process, pdiff_started
from support.killing import checkpoint_at, kill_at

from pdiff.results.inventory import leftovers, verify_workspace
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import RunStatus, list_runs, lock_is_held

pytestmark = pytest.mark.metaworld


def test_two_collects_of_one_family_take_separate_versions(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    args = ["collect", "--env", FAMILY, "--preset", "smoke", "--tasks", "0,11", "--kinds", "expert,random"]
    first, second = pdiff_started(*args, workspace=ws), pdiff_started(*args, workspace=ws)
    for child in (first, second):
        assert child.wait(timeout=300) == 0, child.stderr.read()
    assert [r.status for r in list_runs(ws, "collect")] == [RunStatus.FINISHED] * 2
    for task in ("task-00", "task-11"):  # both wrote every dataset: versions 0 and 1, nothing overwritten
        names = sorted(p.name for p in (ws.datasets_dir / "pdiff" / FAMILY / task).iterdir() if p.is_dir())
        assert names == ["expert-v0", "expert-v1", "random-v0", "random-v1"]
    assert verify_workspace(ws)["problems"] == [] and leftovers(ws) == []


@pytest.mark.full_matrix  # four processes at once: 30 s on 2 cores
def test_two_tunes_and_a_collect_beside_a_pretrain(pipeline):
    ws = pipeline.ws
    children = [
        pdiff_started("tune", "--diffuse", pipeline.diffuse, "--preset", "smoke", workspace=ws)
        for _ in range(2)
    ]
    children.append(
        pdiff_started(
            "collect", "--env", FAMILY, "--preset", "smoke", "--tasks", "0", "--kinds", "expert", workspace=ws
        )
    )
    children.append(pdiff_started("pretrain", "--env", FAMILY, "--preset", "smoke", workspace=ws))
    for child in children:
        assert child.wait(timeout=300) == 0, child.stderr.read()
    tunes = [r for r in list_runs(ws, "tune") if r.run_id != pipeline.tune]
    assert len(tunes) == 2 and all(r.status is RunStatus.FINISHED for r in tunes)
    assert verify_workspace(ws)["problems"] == []


def test_the_loser_of_a_run_lock_fails_with_a_clear_message(pipeline):
    ws = pipeline.ws
    kill = kill_at(
        ws, "pretrain", ["--env", FAMILY, "--preset", "smoke", "--set", "steps=400"], checkpoint_at(10)
    )
    owner = pdiff_started("pretrain", "--resume", kill.run_id, workspace=ws)
    run_dir = ws.stage_dir("pretrain") / kill.run_id
    deadline = time.monotonic() + 120
    while not lock_is_held(run_dir) and owner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lock_is_held(run_dir), "the resuming process never took the run lock"
    loser = in_workspace(ws, "pretrain", "--resume", kill.run_id)
    assert owner.poll() is None, owner.communicate()[1]
    assert loser.exit_code == 1
    assert "being written by another pdiff process" in one_line_error(loser.stderr)
    assert owner.wait(timeout=300) == 0, owner.stderr.read()
    assert verify_workspace(ws)["problems"] == []


def test_gc_leaves_the_temporary_files_of_a_live_writer(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    live = ws.datasets_dir / f".expert-v0.tmp-{os.getpid()}"
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dead = ws.datasets_dir / f".expert-v0.tmp-{dead_pid}"
    live.mkdir(parents=True)
    dead.mkdir()
    assert leftovers(ws) == [dead]
    # and `pdiff gc` itself, a process of its own, deletes the dead writer's files and spares the live one's
    gc = pdiff_process("gc", "--yes", workspace=ws)
    assert gc.returncode == 0, gc.stderr
    assert "deleted 1 item(s)" in gc.stdout and live.name not in gc.stdout
    assert live.is_dir() and not dead.exists()
