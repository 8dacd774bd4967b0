"""A smoke-sized Meta-World reach workspace shared by the stage tests (collected once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pdiff.config import resolve_config
from pdiff.stages.collect import CollectConfig, run_collect
from pdiff.workspace.root import Workspace

FAMILY = "metaworld-reach"


@pytest.fixture(scope="session")
def collected_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template") / "ws"
    workspace, _ = Workspace.init(root)
    config = resolve_config(CollectConfig, "collect", workspace=workspace, preset="smoke",
                            flags={"env": FAMILY, "kinds": ["expert", "random", "prompt-expert"], "workers": 2})  # fmt: skip
    run_collect(workspace, config, argv=["pdiff", "collect"])
    return root


@pytest.fixture
def reach_ws(collected_template, tmp_path) -> Workspace:
    """A private copy of the collected workspace (tests write runs into it)."""
    root = tmp_path / "reach-ws"
    shutil.copytree(collected_template, root)
    return Workspace.open(root)
