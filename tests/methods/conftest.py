"""A smoke Prompt-DT and diffusion model on the shared reach workspace, trained once for the method tests."""

from __future__ import annotations

import shutil

import pytest
from support.stages import run_smoke

from pdiff.workspace.root import Workspace


@pytest.fixture(scope="session")
def trained(collected_template, tmp_path_factory):
    """The reach workspace with a smoke Prompt-DT and a smoke diffusion model (built once)."""
    root = tmp_path_factory.mktemp("methods") / "ws"
    shutil.copytree(collected_template, root)
    ws = Workspace.open(root)
    pretrain, _ = run_smoke(ws, "pretrain")
    diffuse, _ = run_smoke(ws, "diffuse")
    return ws, pretrain, diffuse
