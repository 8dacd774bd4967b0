"""Helpers of the reliability tests: run the CLI, damage files, read a one-line error.

Killing a real process at a chosen point is tests/support/killing.py (shared with the stage tests)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from support.cli import (
    one_line_error,  # noqa: F401 - the reliability tests import it from here
)

from pdiff.workspace.root import Workspace

FAMILY = "metaworld-reach"


@dataclass
class Pipeline:
    """A workspace with one finished smoke run of each training stage (see conftest.py)."""

    ws: Workspace
    pretrain: str
    diffuse: str
    tune: str
    eval: str


def copy_pipeline(pipeline_template: tuple[Path, dict[str, str]], root: Path) -> Pipeline:
    """The finished smoke pipeline copied to `root`."""
    template, ids = pipeline_template
    shutil.copytree(template, root)
    return Pipeline(Workspace.open(root), **ids)


def flip_byte(path: Path, fraction: float) -> None:
    """Flip the lowest bit of the byte at `fraction` of the file (a single-bit disk or memory error)."""
    data = bytearray(path.read_bytes())
    index = min(int(len(data) * fraction), len(data) - 1)
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    """Cut the file to half its length (a copy or a write that stopped early)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
