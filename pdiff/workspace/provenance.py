"""What produced a run: library versions and the source commit, recorded in every run.json."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pdiff import __version__


def library_versions() -> dict[str, str | None]:
    """Versions that decide a result, recorded in every run."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "pdiff": __version__}
    for name in ("torch", "numpy", "gymnasium", "mujoco", "metaworld", "h5py"):
        versions[name] = getattr(sys.modules.get(name), "__version__", None)
        if versions[name] is None:  # not imported, or no __version__ (metaworld): ask the installed package
            try:
                versions[name] = version(name)
            except PackageNotFoundError:
                versions[name] = None
    versions["mujoco_gl"] = os.environ.get("MUJOCO_GL")
    return versions


def git_state() -> dict[str, Any]:
    """Commit of the pdiff source tree, when it is a git checkout (else nulls)."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
