"""The shared tiny teacher run (see teacher_setup.py)."""

from __future__ import annotations

import pytest
from teacher_setup import tiny_config, tiny_family

from pdiff.teachers import train_teacher


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """2 × TINY_UPDATES updates of cheetah-dir in one go (seed 3)."""
    return train_teacher(
        tiny_family(), tiny_config(), tmp_path_factory.mktemp("teacher") / "straight", seed=3
    )
