"""One thin module per CLI stage; each registers its config model on import."""

from __future__ import annotations

import importlib

STAGE_MODULES = ("collect", "pretrain", "diffuse", "tune", "eval", "report")  # reproduce: pdiff.workflows


def load_stage_configs() -> None:
    """Import every stage module so that `pdiff config show` knows all stage configs."""
    for name in STAGE_MODULES:
        importlib.import_module(f"pdiff.stages.{name}")
