"""Every test gets its own workspace root and headless rendering; no test touches ./workspace.

Also a smoke-sized Meta-World reach workspace shared by the stage and method tests (collected once per session).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest  # noqa: E402

REACH = "metaworld-reach"


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    monkeypatch.setenv("PDIFF_WORKSPACE", str(root))
    monkeypatch.setenv("MUJOCO_GL", "egl")
    return root


@pytest.fixture(scope="session")
def collected_template(tmp_path_factory) -> Path:
    from pdiff.config import resolve_config
    from pdiff.stages.collect import CollectConfig, run_collect
    from pdiff.workspace.root import Workspace

    root = tmp_path_factory.mktemp("template") / "ws"
    workspace, _ = Workspace.init(root)
    config = resolve_config(CollectConfig, "collect", workspace=workspace, preset="smoke",
                            flags={"env": REACH, "kinds": ["expert", "random", "prompt-expert"], "workers": 2})  # fmt: skip
    run_collect(workspace, config, argv=["pdiff", "collect"])
    return root


@pytest.fixture
def reach_ws(collected_template, tmp_path):  # noqa: ANN201 - a pdiff Workspace
    """A private copy of the collected workspace (tests write runs into it)."""
    from pdiff.workspace.root import Workspace

    root = tmp_path / "reach-ws"
    shutil.copytree(collected_template, root)
    return Workspace.open(root)
