"""Every test gets its own workspace root and headless rendering; no test touches ./workspace."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    monkeypatch.setenv("PDIFF_WORKSPACE", str(root))
    monkeypatch.setenv("MUJOCO_GL", "egl")
    return root
