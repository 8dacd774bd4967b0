"""The CLI as users meet it: CliRunner for speed, a real subprocess for exit codes and stream separation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import one_line_error, pdiff_process, runner
from support.killing import stale_run

from pdiff import __version__
from pdiff.cli import app
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import create_run, running


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"pdiff {__version__}"


def test_init_then_inspect(tmp_path):
    ws = tmp_path / "scratch-ws"
    result = invoke("init", str(ws))
    assert result.exit_code == 0, result.output
    for name in ("config.yaml", "README.md", "workspace.json", "datasets", "runs"):
        assert (ws / name).exists()
    assert "presets" in (ws / "config.yaml").read_text()
    again = invoke("--json", "init", str(ws))
    assert json.loads(again.stdout)["created"] == []  # idempotent, nothing overwritten
    listing = invoke("-w", str(ws), "ls", "--json")
    assert listing.exit_code == 0 and json.loads(listing.stdout) == []
    assert invoke("-w", str(ws), "status").exit_code == 0
    assert invoke("-w", str(ws), "verify").exit_code == 0


def test_workspace_from_env_var(isolated_workspace):
    assert invoke("init").exit_code == 0  # PDIFF_WORKSPACE points at the per-test root
    assert (isolated_workspace / "workspace.json").is_file()


def test_missing_workspace_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nowhere"
    result = pdiff_process("-w", str(missing), "ls")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: workspace {missing} does not exist"
    assert lines[1].startswith("hint: create it with `pdiff init")
    assert "Traceback" not in result.stderr


def test_unknown_command_and_flag_are_usage_errors():
    assert pdiff_process("bogus").returncode == 2
    assert pdiff_process("ls", "--bogus").returncode == 2


def test_show_unknown_run(tmp_path):
    Workspace.init(tmp_path / "w")
    result = invoke("-w", str(tmp_path / "w"), "show", "nope")
    assert result.exit_code == 2 and "no run 'nope'" in result.stderr


def test_status_shows_a_sigkilled_run_as_stale_and_gc_removes_it(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    stale_run(ws, "pretrain", "cheetah-vel")
    with running(create_run(ws, "collect", config={}, argv=[], seed=0, family="cheetah-vel")):
        pass
    report = json.loads(invoke("-w", str(ws.root), "--json", "status").stdout)
    assert report["counts"] == {"STALE": 1, "FINISHED": 1}
    assert "--resume" in report["attention"][0]["advice"]
    result = pdiff_process("-w", str(ws.root), "gc")  # no terminal to ask on: refuses rather than deleting
    assert result.returncode == 2 and "--yes" in result.stderr
    assert invoke("-w", str(ws.root), "gc", "--dry-run").exit_code == 0
    assert len(list((ws.root / "runs" / "pretrain").iterdir())) == 1
    assert invoke("-w", str(ws.root), "gc", "--yes").exit_code == 0
    assert not (ws.root / "runs" / "pretrain").exists() or not list((ws.root / "runs" / "pretrain").iterdir())
    assert len(list((ws.root / "runs" / "collect").iterdir())) == 1  # finished runs are kept


def test_verify_reports_a_tampered_output(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    run = create_run(ws, "pretrain", config={}, argv=[], seed=0, family="cheetah-vel")
    with running(run):
        (run.dir / "weights.bin").write_bytes(b"\x00" * 64)
        run.record_output(run.dir / "weights.bin", "checkpoint")
    assert invoke("-w", str(ws.root), "verify").exit_code == 0
    with open(run.dir / "weights.bin", "r+b") as handle:
        handle.seek(10)
        handle.write(b"\x01")
    result = pdiff_process("-w", str(ws.root), "verify")
    assert result.returncode == 1 and "MISMATCH" in result.stdout and "weights.bin" in result.stdout


def test_envs_lists_families_and_rejects_unknown():
    result = invoke("--json", "envs")
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"cheetah-vel", "cheetah-dir", "ant-dir", "metaworld-reach"} <= names
    vel = next(row for row in json.loads(result.stdout) if row["name"] == "cheetah-vel")
    assert vel["test_tasks"] == [2, 7, 15, 23, 26] and (vel["obs_dim"], vel["act_dim"]) == (20, 6)
    in_distribution = [row["name"] for row in json.loads(result.stdout) if row["in_distribution"]]
    assert in_distribution == ["cheetah-dir"]  # its test tasks are its training tasks
    bad = pdiff_process("envs", "cheetah-velocity")
    assert bad.returncode == 2 and "cheetah-vel" in bad.stderr and "Traceback" not in bad.stderr


def test_envs_one_family_shows_task_params():
    rows = json.loads(invoke("--json", "envs", "cheetah-vel").stdout)["tasks"]
    assert len(rows) == 40 and rows[2]["split"] == "test"
    assert rows[2]["params"]["goal_vel"] == pytest.approx(0.225)


def test_config_show_and_bad_settings(tmp_path):
    Workspace.init(tmp_path / "w")
    shown = json.loads(
        invoke("-w", str(tmp_path / "w"), "--json", "config", "show", "collect", "--preset", "smoke").stdout
    )
    episodes = next(r for r in shown if r["key"] == "episodes")
    assert episodes["value"] == 2 and episodes["description"]
    bad = invoke("-w", str(tmp_path / "w"), "collect", "--set", "episodez=3")
    assert bad.exit_code == 2 and "unknown collect setting 'episodez' (from --set)" in bad.stderr
    bad_kind = invoke("-w", str(tmp_path / "w"), "collect", "--kinds", "expert,great")
    assert bad_kind.exit_code == 2 and "great" in bad_kind.stderr
    bad_env = invoke("-w", str(tmp_path / "w"), "collect", "--env", "metaworld-reech")
    assert bad_env.exit_code == 2 and "metaworld-reach" in bad_env.stderr
    bad_task = invoke("-w", str(tmp_path / "w"), "collect", "--env", "cheetah-dir", "--tasks", "0,7")
    assert bad_task.exit_code == 2 and "7" in bad_task.stderr
    for no_ids in ("1-0", ","):  # a reversed range or nothing at all names no task
        empty = invoke("-w", str(tmp_path / "w"), "collect", "--env", "cheetah-dir", "--tasks", no_ids)
        assert empty.exit_code == 2 and f"--tasks {no_ids!r}" in one_line_error(empty.stderr), empty.output
    assert not list(Path(tmp_path / "w" / "runs").iterdir())  # nothing was started for bad input


@pytest.mark.slow
def test_doctor_on_a_fresh_workspace(tmp_path):
    Workspace.init(tmp_path / "w")
    result = pdiff_process("-w", str(tmp_path / "w"), "--json", "doctor")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.returncode == 0, result.stdout
    assert checks["torch"]["status"] == "ok" and checks["mujoco"]["status"] == "ok"
    assert checks["workspace"]["status"] == "ok" and checks["rendering"]["status"] in ("ok", "warn")
    missing = pdiff_process("-w", str(tmp_path / "none"), "--json", "doctor")
    assert any("pdiff init" in c["fix"] for c in json.loads(missing.stdout))
