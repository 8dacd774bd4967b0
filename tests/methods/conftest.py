"""A smoke Prompt-DT and diffusion model on the shared reach workspace, trained once for the method tests."""

from __future__ import annotations

import shutil

import pytest

from pdiff.config import resolve_config
from pdiff.stages.diffuse import DiffuseConfig, run_diffuse
from pdiff.stages.pretrain import PretrainConfig, run_pretrain
from pdiff.workspace.root import Workspace

REACH = "metaworld-reach"


@pytest.fixture(scope="session")
def trained(collected_template, tmp_path_factory):
    """The reach workspace with a smoke Prompt-DT and a smoke diffusion model (built once)."""
    root = tmp_path_factory.mktemp("methods") / "ws"
    shutil.copytree(collected_template, root)
    ws = Workspace.open(root)
    config = resolve_config(PretrainConfig, "pretrain", workspace=ws, preset="smoke", flags={"env": REACH})
    pretrain, _ = run_pretrain(ws, config, argv=["pdiff", "pretrain"])
    config = resolve_config(DiffuseConfig, "diffuse", workspace=ws, preset="smoke", flags={"env": REACH})
    diffuse, _ = run_diffuse(ws, config, argv=["pdiff", "diffuse"])
    return ws, pretrain, diffuse
