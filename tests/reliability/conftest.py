"""A smoke workspace with one finished run of every stage, built once per session; tests get a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability_tools import FAMILY, Pipeline, copy_pipeline
from support.cli import workspace_json

from pdiff.workspace.root import Workspace


def _run(ws: Workspace, *args: str) -> str:
    return workspace_json(ws, *args, "--preset", "smoke")["run_id"]


@pytest.fixture(scope="session")
def pipeline_template(collected_template, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("pipeline") / "ws"
    shutil.copytree(collected_template, root)
    ws = Workspace.open(root)
    ids = {"pretrain": _run(ws, "pretrain", "--env", FAMILY)}
    ids["diffuse"] = _run(ws, "diffuse", "--pretrain", ids["pretrain"])
    ids["tune"] = _run(ws, "tune", "--diffuse", ids["diffuse"])
    ids["eval"] = _run(ws, "eval", "--tune", ids["tune"], "--device", "cpu")
    return root, ids


@pytest.fixture
def pipeline(pipeline_template, tmp_path) -> Pipeline:
    """A private copy of the finished smoke pipeline (tests add runs to it and damage its files)."""
    return copy_pipeline(pipeline_template, tmp_path / "pipeline-ws")
