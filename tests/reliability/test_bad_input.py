"""Bad input never gives a traceback: generated bad argument sets end with exit 2 and one informative line.

Also: a full disk (file-size limit) and a read-only workspace (a read-only mount, so it holds for root too)
end a run with one line, and a NaN loss stops training with a clear error that keeps the last good checkpoint.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_tools import FAMILY, Pipeline, copy_pipeline, one_line_error
from support.cli import in_workspace

from pdiff.envs import get_family
from pdiff.training.state import CheckpointStore
from pdiff.workspace.runs import RunStatus, list_runs

pytestmark = pytest.mark.metaworld
STAGES = ["collect", "pretrain", "diffuse", "tune", "eval"]
FAULTS = [
    "family",
    "method",
    "shots",
    "too-many-shots",
    "set-key",
    "set-type",
    "config-key",
    "config-type",
    "workspace",
    "resume",
    "ids",
    "device",
    "preset",
    "other-family",
    "number",
    "click",
]

text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)
word = st.from_regex(r"[a-z][a-z_]{2,10}", fullmatch=True)


def _not_a_family(name: str) -> bool:
    try:
        get_family(name)
    except Exception:  # noqa: BLE001 - any refusal means it is not a family
        return True
    return False


@st.composite
def bad_arguments(draw, p, fault: str) -> tuple[list[str], str]:
    """(argv after `-w WS`, a string the error line must contain) for one kind of fault."""
    stage = draw(st.sampled_from(STAGES))
    if fault == "family":
        name = draw(text.filter(lambda s: not s.startswith("-") and _not_a_family(s)))
        return [stage, "--env", name], name
    if fault == "method":
        name = draw(word.filter(lambda s: s not in ("prompt_dt",)))
        return ["tune", "--method", name], name
    if fault == "shots":
        shots = draw(st.integers(-(10**6), -1))  # 0 is zero-shot adaptation (prompt-diffuser, prompt-dt)
        return [draw(st.sampled_from(["tune", "eval"])), "--shots", str(shots)], f"--shots {shots}"
    if fault == "too-many-shots":
        shots = draw(st.integers(3, 10**4))  # the smoke data has 2 episodes per task
        command = draw(
            st.sampled_from(
                [["tune", "--diffuse", p.diffuse], ["eval", "--pretrain", p.pretrain, "--prompt", "fewshot"]]
            )
        )
        return [*command, "--shots", str(shots)], f"--shots {shots}"
    if fault == "set-key":
        key = draw(word.filter(lambda s: s not in ("env", "steps", "seed", "lr", "device")))
        return [stage, "--set", f"{key}={draw(st.integers())}"], key
    if fault == "set-type":
        key = draw(
            st.sampled_from(["seed", "device"])
        )  # (env: the upstream run's family is a flag, above --set)
        bad = {"seed": "-1", "device": draw(word) + ":x"}[key]
        return [stage, "--set", f"{key}={bad}"], key
    if fault in ("config-key", "config-type"):
        path = p.ws.root.parent / f"bad-{draw(st.integers(0, 10**9))}.yaml"
        key = draw(word.filter(lambda s: s not in ("env", "seed", "device", "steps", "lr")))
        body = f"{stage}:\n  {key}: 1\n" if fault == "config-key" else f"{stage}:\n  seed: {draw(word)}\n"
        path.write_text(body)
        return [stage, "--config", str(path)], key if fault == "config-key" else "seed"
    if fault == "workspace":
        missing = f"/nonexistent-{draw(st.integers(0, 10**9))}"
        return ["-w", missing, stage], missing
    if fault == "resume":
        ref = draw(word)
        return [draw(st.sampled_from(STAGES)), "--resume", ref], ref
    if fault == "ids":
        bad = draw(st.sampled_from(["a", "1,b", "x-3", "1-", "--"])) + draw(word)
        flag = "--tasks" if stage == "collect" else "--seeds"
        return [("collect" if flag == "--tasks" else "eval"), flag, bad], flag
    if fault == "device":
        device = draw(word.filter(lambda s: s not in ("auto", "cpu", "cuda")))
        return [draw(st.sampled_from(["pretrain", "diffuse", "tune", "eval"])), "--device", device], device
    if fault == "preset":
        preset = draw(word.filter(lambda s: s not in ("smoke", "quick", "study", "paper")))
        return [stage, "--preset", preset], preset
    if fault == "other-family":  # a checkpoint of metaworld-reach evaluated on another family
        other = draw(st.sampled_from(["cheetah-vel", "ant-dir", "metaworld-push"]))
        return ["eval", "--pretrain", p.pretrain, "--env", other, "--prompt", "random"], other
    if fault == "number":  # the line names the setting and the value it got (a bare "0" is in any message)
        command, flag, value, setting = draw(
            st.sampled_from(
                [
                    ("pretrain", "--steps", "0", "steps=0"),
                    ("diffuse", "--steps", "-5", "steps=-5"),
                    ("eval", "--episodes", "0", "episodes=0"),
                    ("collect", "--episodes", "0", "episodes=0"),
                    ("collect", "--workers", "0", "workers=0"),
                    ("diffuse", "--lambda", "-1", "lam=-1.0"),
                    ("diffuse", "--diffusion-steps", "0", "diffusion.steps=0"),
                    ("eval", "--video", "-1", "video=-1"),
                    ("collect", "--horizon", "0", "horizon=0"),
                ]
            )
        )
        return [command, flag, value], f"setting {setting} "
    option = draw(st.sampled_from(["--steps", "--episodes", "--shots", "--seed"]))
    return [
        {"--steps": "pretrain", "--episodes": "eval", "--shots": "tune", "--seed": "pretrain"}[option],
        option,
        draw(word),
    ], "Error"


@pytest.fixture(scope="module")
def shared_pipeline(pipeline_template, tmp_path_factory) -> Pipeline:
    """One copy for the tests here that only read it."""
    return copy_pipeline(pipeline_template, tmp_path_factory.mktemp("bad-input") / "ws")


def test_bad_arguments_give_one_line_and_exit_2(shared_pipeline):
    """200 generated argument sets, every kind of fault among them, each refused with exit 2 and one line."""
    seen: list[tuple[str, tuple[str, ...]]] = []

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fault=st.sampled_from(FAULTS), data=st.data())
    def refused(fault: str, data: st.DataObject) -> None:
        argv, needle = data.draw(bad_arguments(shared_pipeline, fault))
        if argv[0] != "-w":
            argv = [*argv, "--preset", "smoke"] if "--preset" not in argv else argv
        seen.append((fault, tuple(argv)))
        result = (
            in_workspace(shared_pipeline.ws, *argv)
            if argv[0] != "-w"
            else in_workspace(Path(argv[1]), *argv[2:])
        )
        assert result.exit_code == 2, (argv, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), argv
        if needle == "Error":  # Click's own usage error: its box names the option
            assert "Traceback" not in result.output and "Error" in result.output, argv
            assert argv[1] in result.output, (argv, result.output)
            return
        line = one_line_error(result.stderr)
        shown = repr(needle)[1:-1]  # messages quote values with repr: non-ASCII text shows escaped
        assert needle in line or shown in line, (argv, result.stderr)
        assert "hint:" in result.stderr, (argv, result.stderr)

    refused()
    print(f"\nbad argument sets tried: {len(seen)}, distinct: {len({argv for _, argv in seen})}")
    assert len(seen) >= 200 and {fault for fault, _ in seen} == set(FAULTS)


def _limited_file_size(limit: int):  # a preexec_fn
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_is_one_line_and_resumable(reach_ws):
    """No file may grow past 20 kB: the first checkpoint cannot be written; --resume later finishes."""
    env = {**os.environ, "PDIFF_WORKSPACE": str(reach_ws.root)}
    command = [sys.executable, "-m", "pdiff", "pretrain", "--env", FAMILY, "--preset", "smoke"]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, preexec_fn=_limited_file_size(20_000)
    )
    assert done.returncode == 1, done.stderr
    line = one_line_error(done.stderr)
    assert "disk full while writing" in line and "--resume" in done.stderr
    (run,) = list_runs(reach_ws, "pretrain")
    assert run.display_status() in ("FAILED", "STALE")
    assert in_workspace(reach_ws, "pretrain", "--resume", run.run_id).exit_code == 0


def _read_only_mount(path: Path) -> list[str]:
    """A command prefix: run the command with `path` bind-mounted read-only, in a mount namespace of its own.

    Works as root (where file permissions stop nothing) and, through a user namespace, as any user."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [shutil.which("unshare") or "unshare", *user, "--mount", "--", "sh", "-c", script, str(path)]


def test_read_only_workspace_is_one_line(reach_ws):
    runs = reach_ws.root / "runs"
    before = sorted(runs.rglob("*"))
    probe = subprocess.run(
        [*_read_only_mount(runs), "touch", str(runs / "probe")], capture_output=True, text=True
    )
    if "Read-only file system" not in probe.stderr:
        pytest.skip(
            f"no read-only bind mount here (unshare and mount need privileges): {probe.stderr[-300:]}"
        )
    env = {**os.environ, "PDIFF_WORKSPACE": str(reach_ws.root)}
    command = [sys.executable, "-m", "pdiff", "pretrain", "--env", FAMILY, "--preset", "smoke"]
    done = subprocess.run([*_read_only_mount(runs), *command], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr)
    assert "cannot write" in line and str(runs) in line and "Read-only file system" in line, line
    assert sorted(runs.rglob("*")) == before  # nothing was written


@pytest.mark.parametrize("stage", ["pretrain", "diffuse", "tune"])
def test_nan_loss_stops_with_the_last_good_checkpoint(pipeline, stage):
    args = {
        "pretrain": ["--env", FAMILY],
        "diffuse": ["--pretrain", pipeline.pretrain],
        "tune": ["--diffuse", pipeline.diffuse],
    }[stage]
    extra = ["--set", "selection=off"] if stage == "tune" else ["--set", "checkpoint_every=1"]
    result = in_workspace(pipeline.ws, stage, *args, "--preset", "smoke", "--set", "lr=1e30", *extra)
    assert result.exit_code == 1, result.output
    line = one_line_error(result.stderr)
    assert f"{stage} loss became non-finite at step" in line
    run = [r for r in list_runs(pipeline.ws, stage) if r.status is RunStatus.FAILED][-1]
    if stage != "tune":
        assert "last good checkpoint" in line
        store = CheckpointStore(run.dir / "checkpoints")
        kept = store.latest()
        assert kept is not None and str(kept) in line
        store.verify(kept)  # intact
    assert in_workspace(pipeline.ws, "verify").exit_code == 0
