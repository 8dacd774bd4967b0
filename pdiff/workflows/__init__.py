"""Workflows: what composes several stages. `pdiff reproduce` (the paper's matrix as a graph of steps, run in
order or `--jobs` at a time), `pdiff demo`, `pdiff sweep` (the matrix as independent jobs) and the scaling
ladder's runs. A workflow calls each stage's `run_<stage>` as its CLI command would, and reuses a finished run
of exactly the config a step asks for, so running one again after a kill continues where it stopped."""

from __future__ import annotations

import importlib

from pdiff.stages import load_stage_configs


def load_configs() -> None:
    """Every stage's config and reproduce's (each registers on import), so `pdiff config show` knows them
    all."""
    load_stage_configs()
    importlib.import_module("pdiff.workflows.reproduce")
