"""Every test gets its own workspace root and headless rendering; no test touches ./workspace.

Also a smoke-sized Meta-World reach workspace shared by the stage and method tests (collected once per
session), and the same with a smoke Prompt-DT trained on it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run (CI must not pass or fail by luck) and keep no database.
settings.register_profile("pdiff", derandomize=True, database=None)
settings.load_profile("pdiff")

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
    config = resolve_config(
        CollectConfig,
        "collect",
        workspace=workspace,
        preset="smoke",
        flags={"env": REACH, "kinds": ["expert", "random", "prompt-expert"], "workers": 2},
    )
    run_collect(workspace, config, argv=["pdiff", "collect"])
    return root


@pytest.fixture
def reach_ws(collected_template, tmp_path):  # a pdiff Workspace
    """A private copy of the collected workspace (tests write runs into it)."""
    from pdiff.workspace.root import Workspace

    root = tmp_path / "reach-ws"
    shutil.copytree(collected_template, root)
    return Workspace.open(root)


@pytest.fixture
def pretrained(reach_ws):  # (Workspace, the pretrain Run)
    """A private reach workspace with one finished smoke pretrain run."""
    from support.stages import run_smoke

    run, _ = run_smoke(reach_ws, "pretrain")
    return reach_ws, run


@pytest.fixture(scope="session")
def renderer() -> str:
    """The OpenGL back end MuJoCo renders with; skips, saying why, where none works (CI allows no such
    skip)."""
    import mujoco

    backend = os.environ.get("MUJOCO_GL", "egl")
    try:
        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody/></mujoco>")
        with mujoco.Renderer(model, 8, 8) as offscreen:
            offscreen.render()
    except Exception as exc:  # noqa: BLE001 - any failure means no renderer
        pytest.skip(
            f"no OpenGL renderer for MUJOCO_GL={backend} ({exc.__class__.__name__}: {exc}); "
            "install libegl1 (egl) or libosmesa6 (osmesa)"
        )
    return backend
