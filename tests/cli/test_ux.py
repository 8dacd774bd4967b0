"""What a user sees (issue 17): typos are usage errors with a suggestion, list options have one spelling,
suggested commands run when pasted from another directory, help shows real placeholders."""

from __future__ import annotations

import json
import re
import shlex
import signal

import pytest
import typer
from support.cli import pdiff_process, runner
from support.killing import kill_at, metrics_rows, stale_run

from pdiff.cli import app
from pdiff.workflows.pipeline import stage_config
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import find_run


def pasted(line: str) -> list[str]:
    """A suggested `pdiff ...` command as the shell would split it, run with this interpreter."""
    words = shlex.split(line)
    assert words[0] == "pdiff", line
    return words[1:]


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["ls", "--stage", "tun"], "did you mean 'tune'"),
        (["ls", "--env", "metaworld-rech"], "did you mean 'metaworld-reach'"),
        (["ls", "--datasets", "--env", "chetah-vel"], "did you mean 'cheetah-vel'"),
        (["tune", "--method", "loraa"], "did you mean 'lora'"),
        (["eval", "--prompt", "fewshoot"], "did you mean 'fewshot'"),
        (["tune", "--method", "full-data"], "pretrain --include-test-tasks"),  # a report row, not a method
        (["tune", "--method", "random-prompt"], "--prompt random"),
        (["tune", "--set", "method=full-data"], "pretrain --include-test-tasks"),  # any route to the setting
    ],
)
def test_typos_are_usage_errors_with_a_suggestion(tmp_path, args, suggestion):
    Workspace.init(tmp_path / "w")
    result = runner.invoke(app, ["-w", str(tmp_path / "w"), *args])
    assert result.exit_code == 2, result.output
    assert suggestion in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "w" / "runs").iterdir())


def test_gc_has_json(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    result = runner.invoke(app, ["-w", str(ws.root), "--json", "gc", "--dry-run"])
    assert result.exit_code == 0 and json.loads(result.stdout) == {
        "targets": [],
        "deleted": False,
        "dry_run": True,
    }


def test_list_options_take_commas_and_repeats_everywhere(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    plan = runner.invoke(
        app,
        [
            "-w",
            str(ws.root),
            "--json",
            "reproduce",
            "--dry-run",
            "--preset",
            "smoke",
            "--seeds",
            "0,1,2",
            "--env",
            "cheetah-vel,ant-dir",
            "--methods",
            "prompt-dt",
        ],
    )
    assert plan.exit_code == 0, plan.output
    steps = [row["step"] for row in json.loads(plan.stdout)["steps"]]
    assert "tune:cheetah-vel:prompt-dt:expert" in steps and "tune:ant-dir:prompt-dt:expert" in steps
    assert "--seeds 0,1,2" in plan.stderr
    older = runner.invoke(
        app,
        [
            "-w",
            str(ws.root),
            "reproduce",
            "--dry-run",
            "--preset",
            "smoke",
            "--seeds",
            "2",
            "--envs",
            "cheetah-vel",
            "--methods",
            "prompt-dt",
        ],
    )
    assert older.exit_code == 0 and "--seeds 0,1" in older.stderr  # the older spellings still work
    for spelling in (
        ["--env", "cheetah-vel,ant-dir"],
        ["--env", "cheetah-vel", "--env", "ant-dir"],
        ["--envs", "cheetah-vel,ant-dir"],
    ):
        lines = runner.invoke(app, ["-w", str(ws.root), "sweep", *spelling, "--only", "shared"]).stdout
        assert "collect --env cheetah-vel" in lines and "collect --env ant-dir" in lines, spelling


def test_help_shows_placeholders_and_stage_examples_that_work(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    commands = typer.main.get_command(app).commands
    names = (
        "collect",
        "pretrain",
        "diffuse",
        "tune",
        "eval",
        "reproduce",
        "sweep",
        "ls",
        "gc",
        "show",
        "init",
        "envs",
    )
    for name in (*names, "config show"):
        text = " ".join(runner.invoke(app, [*name.split(), "--help"]).stdout.split())
        assert "Usage:" in text and not re.search(r"<[a-z_\[\]]+>", text), (name, text)
        if name in ("collect", "pretrain", "diffuse", "tune", "eval"):
            (help_text,) = [p.help for p in commands[name].params if "--set" in p.opts]
            example = re.search(r"--set (\S+=\S+)", help_text).group(1)
            stage_config(ws, name, "smoke", {}, [example])  # the example is a setting of that stage
    rows = json.loads(runner.invoke(app, ["--json", "config", "show", "tune"]).stdout)
    method = next(r for r in rows if r["key"] == "method")
    assert "prompt-diffuser" in method["type"] and "lora" in method["type"]  # a Literal lists its values


def test_help_lists_the_stages_in_the_order_they_run():
    listed = re.findall(r"^│ ([a-z]+) ", runner.invoke(app, ["--help"]).stdout, re.M)
    stages = ["collect", "pretrain", "diffuse", "tune", "eval", "report", "reproduce"]
    assert listed[: len(stages)] == stages and {"init", "ls", "doctor"} <= set(listed[len(stages) :])


def test_tune_in_an_empty_workspace_says_what_to_run_first(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    result = runner.invoke(app, ["-w", str(ws.root), "tune"])
    assert result.exit_code == 2
    for stage in ("collect", "pretrain", "diffuse"):
        assert f"pdiff -w {ws.root.resolve()} {stage}" in result.stderr


def test_status_fixes_carry_the_workspace(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    stale_run(ws, "pretrain", "cheetah-vel")
    advice = json.loads(pdiff_process("-w", str(ws.root), "--json", "status").stdout)["attention"][0][
        "advice"
    ]
    assert f"pdiff -w {ws.root.resolve()} pretrain --resume" in advice


@pytest.mark.metaworld
def test_pasted_next_commands_run_from_another_directory(reach_ws, tmp_path):
    here, elsewhere = reach_ws.root.parent, tmp_path / "elsewhere"
    elsewhere.mkdir()
    trained = pdiff_process(
        "-w", reach_ws.root.name, "pretrain", "--env", "metaworld-reach", "--preset", "smoke", cwd=here
    )
    assert trained.returncode == 0, trained.stderr
    suggestion = next(line for line in trained.stderr.splitlines() if line.startswith("next: "))
    evaluate = suggestion.removeprefix("next: ").split("   (or: ")[0]
    assert f"-w {reach_ws.root.resolve()}" in evaluate and "--preset smoke" in evaluate
    evaluated = pdiff_process(*pasted(evaluate), cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr
    suggestion = next(line for line in evaluated.stderr.splitlines() if line.startswith("next: "))
    report, show = suggestion.removeprefix("next: ").removesuffix(")").split("   (or: ")
    reported = pdiff_process(*pasted(report), cwd=elsewhere)
    assert reported.returncode == 0 and f"{reach_ws.root.resolve()}/runs/report/" in reported.stderr
    assert f"next: pdiff -w {reach_ws.root.resolve()} report --out " in reported.stderr  # how to publish it
    shown = pdiff_process(*pasted(show), cwd=elsewhere)
    assert shown.returncode == 0 and "eval prompt-dt on metaworld-reach" in shown.stdout


@pytest.mark.metaworld
def test_ctrl_c_names_the_run_and_its_resume_command_in_the_log_too(reach_ws):
    args = ["--env", "metaworld-reach", "--preset", "smoke", "--steps", "2000"]
    kill = kill_at(reach_ws, "pretrain", args, metrics_rows(1), sig=signal.SIGINT)
    assert kill.returncode == 130, kill.stderr
    resume = f"pdiff -w {reach_ws.root.resolve()} pretrain --resume {kill.run_id}"  # PDIFF_WORKSPACE was set
    assert resume in kill.stderr.splitlines()[-2], kill.stderr  # on a line of its own, to copy
    log = (kill.run_dir / "log.txt").read_text()
    assert f"interrupted: pretrain run {kill.run_id} stopped (KILLED)" in log and resume in log


@pytest.mark.metaworld
@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--set", "env=cheetah-vel"],
        ["diffuse", "--set", "env=cheetah-vel"],
        ["tune", "--method", "prompt-dt", "--set", "env=cheetah-vel"],
    ],
)
def test_the_family_of_the_latest_run_never_overrides_one_the_user_set(pretrained, command):
    # the workspace's newest pretrain is on reach: `--set env=` names another family, which has no runs
    ws, _ = pretrained
    result = runner.invoke(app, ["-w", str(ws.root), *command, "--preset", "smoke"])
    assert result.exit_code == 2, result.output
    assert "no finished pretrain run for cheetah-vel" in result.stderr


@pytest.mark.metaworld
def test_a_stage_without_a_family_follows_the_latest_upstream_run(pretrained, tmp_path):
    ws, run = pretrained
    config = tmp_path / "eval.yaml"
    config.write_text("eval:\n  episodes: 1\n")
    result = runner.invoke(
        app, ["-w", str(ws.root), "--json", "eval", "--config", str(config), "--preset", "smoke"]
    )
    assert result.exit_code == 0, result.output
    assert find_run(ws, json.loads(result.stdout)["run_id"]).family == run.family
