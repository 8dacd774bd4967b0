"""Fixtures for the dataset tests: a datasets root, a writer, and a loader cache emptied around each test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dataset_factory import write

from pdiff.data import loader
from pdiff.data.minari_format import Episode


@pytest.fixture
def datasets_root(tmp_path: Path) -> Path:
    return tmp_path / "datasets"


@pytest.fixture
def writer(datasets_root: Path) -> Callable[..., Path]:
    def _write(family: str, task: int, kind: str, episodes: list[Episode], version: int = 0, **extra) -> Path:
        return write(datasets_root, family, task, kind, episodes, version, **extra)

    return _write


@pytest.fixture(autouse=True)
def fresh_loader_cache():
    loader.clear_cache()
    yield
    loader.clear_cache()
