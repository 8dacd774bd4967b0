"""Run directories: lifecycle, locks, lookup, refusal of unfinished inputs, stale detection."""

from __future__ import annotations

import json
import os
import time

import pytest
from support.interrupts import DropsCtrlC, noticing_dropped_ctrl_c
from support.killing import stale_run

from pdiff.errors import ArtifactError, PdiffError, UsageError
from pdiff.plots import read_metrics
from pdiff.results.cells import active_seconds
from pdiff.workspace.root import Workspace, parse_utc, utc_stamp
from pdiff.workspace.runs import (
    RunStatus,
    create_run,
    find_run,
    latest_finished,
    list_runs,
    load_run,
    reopen_for_resume,
    require_finished,
    running,
)
from pdiff.workspace.verification import verify_run


@pytest.fixture
def ws(tmp_path):
    workspace, _ = Workspace.init(tmp_path / "w")
    return workspace


def _new(ws, family="cheetah-vel", stage="pretrain", cfg=None):
    return create_run(ws, stage, config=cfg or {"x": 1}, argv=["pdiff", stage], seed=0, family=family)


def test_lifecycle_and_manifest(ws):
    run = _new(ws)
    assert run.status is RunStatus.RUNNING and (run.dir / "run.json").is_file()
    with running(run):
        (run.dir / "out.txt").write_text("hello")
        run.record_output(run.dir / "out.txt", "text")
        run.log_metrics({"step": 1, "loss": 0.5})
    manifest = json.loads((run.dir / "run.json").read_text())
    assert manifest["status"] == "FINISHED" and manifest["finished_at"]
    assert manifest["outputs"][0]["path"] == "out.txt" and len(manifest["outputs"][0]["sha256"]) == 64
    for key in ("argv", "config", "config_sha256", "seed", "versions", "git", "inputs"):
        assert key in manifest
    assert manifest["versions"]["torch"]
    assert verify_run(load_run(ws, "pretrain", run.run_id)) == []
    (run.dir / "out.txt").write_text("tampered")
    assert "does not match" in verify_run(load_run(ws, "pretrain", run.run_id))[0]


def test_run_dirs_are_never_reused(ws, monkeypatch):
    # Pin the clock: two runs in the same second with the same config must get distinct, suffixed ids.
    frozen = time.gmtime()
    monkeypatch.setattr(time, "gmtime", lambda *_: frozen)
    first, second = _new(ws), _new(ws)
    assert second.run_id == f"{first.run_id}-2"


def test_failures_and_interrupts_are_recorded(ws):
    run = _new(ws)
    with pytest.raises(PdiffError), running(run):
        raise PdiffError("boom")
    assert load_run(ws, "pretrain", run.run_id).status is RunStatus.FAILED
    run = _new(ws)
    with pytest.raises(KeyboardInterrupt), running(run):
        raise KeyboardInterrupt
    killed = load_run(ws, "pretrain", run.run_id)
    assert killed.status is RunStatus.KILLED
    with pytest.raises(ArtifactError, match="resume"):
        require_finished(killed)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_dropped_after_the_last_progress_update_still_kills_the_run(ws):
    run = _new(ws)
    with noticing_dropped_ctrl_c(), pytest.raises(KeyboardInterrupt), running(run):
        DropsCtrlC()  # Python prints the KeyboardInterrupt and the stage would go on to finish
    assert load_run(ws, "pretrain", run.run_id).status is RunStatus.KILLED


def test_lock_keeps_a_second_writer_out(ws):
    run = _new(ws)
    with pytest.raises(PdiffError, match="another pdiff process"):
        reopen_for_resume(ws, "pretrain", run.run_id)
    run.release()


def test_latest_finished_per_family(ws):
    with pytest.raises(ArtifactError, match="no finished pretrain run for cheetah-vel"):
        latest_finished(ws, "pretrain", "cheetah-vel")
    for family in ("cheetah-vel", "ant-dir", "cheetah-vel"):
        with running(_new(ws, family)):
            pass
    unfinished = _new(ws, "cheetah-vel")
    latest = latest_finished(ws, "pretrain", "cheetah-vel")
    assert latest.status is RunStatus.FINISHED and latest.run_id != unfinished.run_id
    assert (
        latest.run_id
        == [r for r in list_runs(ws, "pretrain", "cheetah-vel") if r.status is RunStatus.FINISHED][-1].run_id
    )
    assert find_run(ws, latest.run_id).run_id == latest.run_id
    assert find_run(ws, str(latest.dir)).run_id == latest.run_id
    with pytest.raises(UsageError, match="ambiguous"):
        find_run(ws, latest.run_id[:4])
    with pytest.raises(UsageError, match="no run"):
        find_run(ws, "2099")
    unfinished.release()


def test_sigkilled_run_is_stale_refused_and_resumable(ws):
    run_id = stale_run(ws, "collect", "metaworld-reach", {"k": 1})
    run = load_run(ws, "collect", run_id)
    assert run.status is RunStatus.RUNNING and run.is_stale() and run.display_status() == "STALE"
    with pytest.raises(ArtifactError, match="STALE"):
        require_finished(run)
    with pytest.raises(ArtifactError):
        latest_finished(ws, "collect", "metaworld-reach")
    time.sleep(1.5)  # the run stands killed: time it did not run
    resumed = reopen_for_resume(ws, "collect", run_id)
    assert not resumed.is_stale() and len(resumed.manifest["resumes"]) == 1
    with running(resumed):
        pass
    # its last write: the manifest, or its other files written in the same second or the next
    assert (
        0
        <= parse_utc(resumed.manifest["resumes"][0]["stopped_at"]) - parse_utc(run.manifest["updated_at"])
        <= 1
    )
    assert active_seconds(resumed.manifest) <= resumed.manifest["duration_s"] - 1.0
    del resumed.manifest["resumes"][0]["stopped_at"]  # resumed by a pdiff that did not record it
    assert active_seconds(resumed.manifest) is None
    assert latest_finished(ws, "collect", "metaworld-reach").run_id == run_id
    assert os.path.exists(ws.root / "runs" / "collect" / run_id / "argv.txt")


WRITE_PROGRESS = """
time.sleep(2.5)  # working: a tune writes its progress records, not its manifest
(run.dir / "progress").mkdir()
(run.dir / "progress" / "trials.jsonl").write_text("{}")
"""


def test_a_resume_counts_a_run_as_stopped_at_its_last_write_of_any_file(ws):
    run = load_run(ws, "tune", stale_run(ws, "tune", "metaworld-reach", {"k": 1}, then=WRITE_PROGRESS))
    written = (run.dir / "progress" / "trials.jsonl").stat().st_mtime
    time.sleep(1.5)
    resumed = reopen_for_resume(ws, "tune", run.run_id)
    stopped_at = resumed.manifest["resumes"][0]["stopped_at"]
    assert (
        stopped_at == utc_stamp(written)
        and parse_utc(stopped_at) >= parse_utc(run.manifest["updated_at"]) + 2
    )


def test_corrupt_manifest_is_a_clear_error(ws):
    run = _new(ws)
    run.release()
    (run.dir / "run.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_run(ws, "pretrain", run.run_id)


def test_missing_workspace_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        Workspace.open(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not a pdiff workspace"):
        Workspace.open(tmp_path / "plain")


def test_metrics_of_a_resumed_run_read_as_one_pass_and_a_torn_line_swallows_nothing(ws):
    run = _new(ws)
    for step in (10, 20, 30):
        run.log_metrics({"step": step, "phase": "train", "loss": float(step)})
    run.log_metrics({"step": 20, "phase": "curve", "train_task_return": 1.0})
    with open(run.dir / "metrics.jsonl", "a") as handle:  # killed in the middle of a line
        handle.write('{"step": 40, "phase": "tr')
    for step in (30, 40):  # resumed from its checkpoint at step 20: step 30 is logged again
        run.log_metrics({"step": step, "phase": "train", "loss": -float(step)})
    run.release()
    rows = read_metrics(run.dir / "metrics.jsonl")
    assert [(r["phase"], r["step"], r.get("loss")) for r in rows] == [
        ("train", 10, 10.0),
        ("train", 20, 20.0),
        ("curve", 20, None),
        ("train", 30, -30.0),
        ("train", 40, -40.0),
    ]
