"""One thin module per CLI stage; each registers its config model on import."""

from __future__ import annotations

import importlib

from pdiff.workspace.root import STAGES

# Every stage but reproduce, which composes the others and so lives in pdiff.workflows.
STAGE_MODULES = tuple(stage for stage in STAGES if stage != "reproduce")


def load_stage_configs() -> None:
    """Import every stage module so that `pdiff config show` knows all stage configs."""
    for name in STAGE_MODULES:
        importlib.import_module(f"pdiff.stages.{name}")
