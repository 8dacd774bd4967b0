"""`pdiff doctor`: check the installation and the workspace, and say what to fix."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REQUIRED_PINS = {"torch": "2.13.0", "mujoco": "3.3.0", "metaworld": "3.1.1"}
MIN_FREE_GB = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - not installed
        return None


def check_python() -> Check:
    ok = (3, 11) <= sys.version_info[:2] < (3, 14)
    fix = "" if ok else "use Python 3.11–3.13 (metaworld 3.1.1 needs < 3.14)"
    return Check("python", "ok" if ok else "fail", platform.python_version(), fix)


def check_pin(module: str) -> Check:
    installed = _version(module)
    wanted = REQUIRED_PINS[module]
    if installed is None:
        return Check(module, "fail", "not installed", f"pip install {module}=={wanted} (or `make demo`)")
    base = installed.split("+")[0]
    if base != wanted:
        return Check(module, "warn", f"{installed} (pdiff pins {wanted})", f"pip install {module}=={wanted}")
    return Check(module, "ok", installed)


def check_torch_device() -> Check:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return Check("torch device", "fail", "torch not importable", "pip install torch==2.13.0")
    if torch.cuda.is_available():
        return Check(
            "torch device", "ok", f"cuda: {torch.cuda.get_device_name(0)}; threads {torch.get_num_threads()}"
        )
    return Check(
        "torch device", "ok", f"cpu only ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    )


def check_precision() -> Check:
    """What the CPU supports and what `precision: auto` picks on it (a second's measurement)."""
    try:
        from pdiff.compute import describe_cpu
    except ImportError:
        return Check("precision", "fail", "torch not importable", "pip install torch==2.13.0")
    cpu = describe_cpu()
    native = ", ".join(cpu["bf16"]) or "none (bf16 would be emulated)"
    return Check(
        "precision", "ok", f"{cpu['cpu']}: native bf16 {native}; auto picks {cpu['auto']} ({cpu['why']})"
    )


def check_rendering() -> Check:
    """Render one HalfCheetah frame in a subprocess (a broken GL stack can crash the interpreter)."""
    backend = os.environ.get("MUJOCO_GL") or "egl"
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('HalfCheetah-v5', render_mode='rgb_array', width=64, height=64)\n"
        "env.reset(seed=0); frame = env.render(); env.close()\n"
        "print(frame.shape)\n"
    )
    env = {**os.environ, "MUJOCO_GL": backend}
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
        )
    except subprocess.TimeoutExpired:
        return Check(
            "rendering",
            "warn",
            f"MUJOCO_GL={backend}: timed out",
            "videos may not work; try MUJOCO_GL=osmesa",
        )
    if result.returncode == 0 and "(64, 64, 3)" in result.stdout:
        return Check("rendering", "ok", f"MUJOCO_GL={backend}")
    last = (result.stderr.strip().splitlines() or ["no output"])[-1][:120]
    return Check(
        "rendering",
        "warn",
        f"MUJOCO_GL={backend} failed: {last}",
        "only `eval --video` needs it: install libegl1 (egl) or libosmesa6 and set MUJOCO_GL=osmesa",
    )


def check_metaworld() -> Check:
    try:
        importlib.import_module("metaworld")
    except Exception as exc:  # noqa: BLE001 - any import failure is reported
        return Check(
            "metaworld import", "fail", f"{exc.__class__.__name__}: {exc}", "pip install metaworld==3.1.1"
        )
    return Check("metaworld import", "ok", "imports")


def check_workspace(root: Path) -> list[Check]:
    checks: list[Check] = []
    probe_dir = root if root.exists() else next((p for p in root.resolve().parents if p.exists()), Path("/"))
    free_gb = shutil.disk_usage(probe_dir).free / 1e9
    status = "ok" if free_gb >= MIN_FREE_GB else "warn"
    checks.append(
        Check(
            "disk",
            status,
            f"{free_gb:.1f} GB free at {probe_dir}",
            "" if status == "ok" else "free disk space",
        )
    )
    if not root.exists():
        checks.append(Check("workspace", "warn", f"{root} does not exist", f"run `pdiff init {root}`"))
    elif not (root / "workspace.json").is_file():
        checks.append(
            Check("workspace", "fail", f"{root} is not a pdiff workspace", f"run `pdiff init {root}`")
        )
    elif not os.access(root, os.W_OK):
        checks.append(
            Check(
                "workspace",
                "fail",
                f"{root} is not writable",
                "fix its permissions or use another --workspace",
            )
        )
    else:
        checks.append(Check("workspace", "ok", f"{root} (writable)"))
    return checks


def run_checks(workspace_root: Path) -> list[Check]:
    checks = [check_python()]
    checks += [check_pin(name) for name in REQUIRED_PINS]
    checks += [check_torch_device(), check_precision(), check_metaworld(), check_rendering()]
    checks += check_workspace(workspace_root)
    return checks
