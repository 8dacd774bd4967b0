"""Datasets in Minari 0.5.4's HDF5 layout: ids, versions and writing, with h5py alone (minari never imported).

One dataset per (family, task, kind) at `<root>/pdiff/<family>/task-NN/<kind>-vV/data/`, holding
`main_data.hdf5` (one `episode_<i>` group per episode) and `metadata.json` (Minari's keys plus a `pdiff`
block with both hashes). Datasets are immutable: a new collection gets the next version. Reading and
checking them is `pdiff.data.minari_read`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import h5py
import numpy as np

from pdiff.errors import ArtifactError, UsageError
from pdiff.workspace.atomic import (
    atomic_replace_dir,
    atomic_write_json,
    remove_tree,
    sha256_file,
    sha256_json,
)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
MINARI_VERSION = "0.5.4"
NAMESPACE = "pdiff"
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
NAMESPACE_METADATA_FILE = "namespace_metadata.json"
# What Minari's readers need (dataset_size for `minari list local`) plus our block.
_MINARI_KEYS = (
    "dataset_id",
    "total_episodes",
    "total_steps",
    "data_format",
    "minari_version",
    "dataset_size",
)
REQUIRED_METADATA_KEYS = (*_MINARI_KEYS, "observation_space", "action_space", "pdiff")
REQUIRED_PDIFF_KEYS = ("schema_version", "content_sha256", "file_sha256")
STEP_ARRAYS = ("observations", "actions", "rewards", "terminations", "truncations")

# Stricter than Minari's `(namespace/)name-vN` grammar (hyphens and underscores are fine there).
_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_ID_RE = re.compile(
    rf"{NAMESPACE}/(?P<family>{_NAME})/task-(?P<task>\d{{2,}})/(?P<kind>{_NAME}?)-v(?P<version>\d+)"
)


@dataclass
class Episode:
    observations: np.ndarray  # (T+1, d_s) float32, includes the initial observation
    actions: np.ndarray  # (T, d_a) float32
    rewards: np.ndarray  # (T,) float64
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    infos: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. {"success": (T,) bool}
    seed: int | None = None  # the reset seed

    @property
    def length(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))


def dataset_id(family: str, task_id: int, kind: str, version: int) -> str:
    """`pdiff/<family>/task-NN/<kind>-vV`, a valid Minari id with nested namespaces."""
    result = f"{NAMESPACE}/{family}/task-{int(task_id):02d}/{kind}-v{int(version)}"
    if task_id < 0 or version < 0 or not _ID_RE.fullmatch(result):
        raise UsageError(
            f"invalid dataset id {result!r}",
            "family and kind use letters, digits, '-' and '_'; task id and version are non-negative integers",
        )
    return result


def parse_dataset_id(value: str) -> tuple[str, int, str, int]:
    """Inverse of `dataset_id`: (family, task_id, kind, version)."""
    match = _ID_RE.fullmatch(value)
    if not match:
        raise UsageError(f"malformed dataset id {value!r}", "expected pdiff/<family>/task-NN/<kind>-vV")
    return match["family"], int(match["task"]), match["kind"], int(match["version"])


def dataset_dir(datasets_root: Path, dataset_id: str) -> Path:
    parse_dataset_id(dataset_id)
    return Path(datasets_root) / dataset_id


def _versions(datasets_root: Path, family: str, task_id: int, kind: str) -> list[int]:
    task_dir = dataset_dir(datasets_root, dataset_id(family, task_id, kind, 0)).parent
    if not task_dir.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(kind)}-v(\d+)")  # hidden `.tmp-` dirs never match
    return [int(m[1]) for p in task_dir.iterdir() if p.is_dir() and (m := pattern.fullmatch(p.name))]


def latest_version(datasets_root: Path, family: str, task_id: int, kind: str) -> int | None:
    return max(_versions(datasets_root, family, task_id, kind), default=None)


def next_version(datasets_root: Path, family: str, task_id: int, kind: str) -> int:
    latest = latest_version(datasets_root, family, task_id, kind)
    return 0 if latest is None else latest + 1


def box_to_json(space: gymnasium.spaces.Box) -> str:
    """Minari's space serialisation: a JSON *string* (not an object) inside metadata.json."""
    return json.dumps(
        {
            "type": "Box",
            "dtype": str(space.dtype),
            "shape": list(space.shape),
            "low": space.low.tolist(),
            "high": space.high.tolist(),
        }
    )


def _little_endian(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def metadata_sha256(metadata: dict) -> str:
    """Hash of metadata.json's content without its own `pdiff.metadata_sha256` (a flipped byte shows)."""
    block = {k: v for k, v in (metadata.get("pdiff") or {}).items() if k != "metadata_sha256"}
    return sha256_json({**metadata, "pdiff": block})


def content_sha256(episodes: Sequence[Episode]) -> str:
    """sha256 over each array's name, dtype, shape and bytes, and each seed, in a fixed order.

    Unlike the file's sha256 it does not depend on the libhdf5 version that wrote the file."""
    digest = hashlib.sha256()
    for index, episode in enumerate(episodes):
        digest.update(f"episode_{index}|seed={episode.seed}\n".encode())
        named = [(name, getattr(episode, name)) for name in STEP_ARRAYS]
        named += [(f"infos/{key}", episode.infos[key]) for key in sorted(episode.infos)]
        for name, array in named:
            array = _little_endian(np.asarray(array))
            digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
            digest.update(array.data)
    return digest.hexdigest()


def _normalised(
    episode: Episode, index: int, obs_space: gymnasium.spaces.Box, act_space: gymnasium.spaces.Box
) -> Episode:
    """The episode in storage dtypes, with every shape checked (a mistake here is a bug in the collector)."""
    ep = Episode(
        observations=np.ascontiguousarray(episode.observations, dtype=obs_space.dtype),
        actions=np.ascontiguousarray(episode.actions, dtype=act_space.dtype),
        rewards=np.ascontiguousarray(episode.rewards, dtype=np.float64),
        terminations=np.ascontiguousarray(episode.terminations, dtype=np.bool_),
        truncations=np.ascontiguousarray(episode.truncations, dtype=np.bool_),
        infos={str(k): np.ascontiguousarray(v) for k, v in episode.infos.items()},
        seed=None if episode.seed is None else int(episode.seed),
    )
    steps = ep.length
    expected = {
        "observations": (steps + 1, *obs_space.shape),
        "actions": (steps, *act_space.shape),
        "rewards": (steps,),
        "terminations": (steps,),
        "truncations": (steps,),
    }
    for name, shape in expected.items():
        if getattr(ep, name).shape != shape:
            raise ValueError(f"episode {index}: {name} has shape {getattr(ep, name).shape}, expected {shape}")
    for key, value in ep.infos.items():
        if value.ndim == 0 or value.shape[0] != steps:
            raise ValueError(
                f"episode {index}: infos[{key!r}] has shape {value.shape}, expected ({steps}, ...)"
            )
    if steps == 0:
        raise ValueError(f"episode {index} has no steps")
    for name in ("observations", "actions", "rewards"):
        if not np.all(np.isfinite(getattr(ep, name))):
            raise ValueError(f"episode {index}: {name} contains NaN or infinity")
    return ep


def _plain(value: Any) -> Any:
    # numpy scalars and arrays in a caller's pdiff block become JSON numbers and lists.
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"pdiff_block holds a {type(value).__name__}, which JSON cannot store")


def _put(group: h5py.Group, name: str, array: np.ndarray) -> None:
    # Minari's writer: chunked, resizable along time, uncompressed.
    group.create_dataset(name, data=array, chunks=True, maxshape=(None, *array.shape[1:]))


def _write_hdf5(path: Path, episodes: Sequence[Episode]) -> None:
    # No timestamps are stored (h5py leaves object time tracking off), so equal episodes give equal bytes.
    # As in Minari, only the root tracks creation order (episode_10 after episode_9); subgroups list by name.
    with h5py.File(path, "w", track_order=True) as file:
        for index, episode in enumerate(episodes):
            group = file.create_group(f"episode_{index}")
            group.attrs["id"] = np.int64(index)
            if episode.seed is not None:
                group.attrs["seed"] = np.int64(episode.seed)
            group.attrs["total_steps"] = np.int64(episode.length)
            for name in STEP_ARRAYS:
                _put(group, name, getattr(episode, name))
            if episode.infos:
                infos = group.create_group("infos")
                for key in sorted(episode.infos):
                    _put(infos, key, episode.infos[key])
            # What Minari's EpisodeMetadataCallback adds after writing.
            for stat in ("sum", "mean", "std", "max", "min"):
                group.attrs[f"rewards_{stat}"] = float(getattr(episode.rewards, stat)())


def _ensure_namespace_file(directory: Path, payload: dict) -> None:
    """Create `namespace_metadata.json` if absent (never overwrite): a temp file hard-linked into place."""
    target = directory / NAMESPACE_METADATA_FILE
    if target.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{NAMESPACE_METADATA_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(payload))
    try:
        os.link(tmp, target)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _ensure_namespaces(datasets_root: Path, dataset_id: str) -> None:
    # Minari's own writer registers every enclosing namespace (pdiff, pdiff/<family>, pdiff/<family>/task-NN).
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        _ensure_namespace_file(Path(datasets_root).joinpath(*parts[:depth]), {})


def write_namespace_metadata(datasets_root: Path, family: str, payload: dict) -> None:
    """`<root>/pdiff/<family>/namespace_metadata.json` (what `minari.get_namespace_metadata` returns)."""
    dataset_id(family, 0, "x", 0)  # validates the family name
    _ensure_namespace_file(Path(datasets_root) / NAMESPACE, {})
    atomic_write_json(Path(datasets_root) / NAMESPACE / family / NAMESPACE_METADATA_FILE, payload)


def write_dataset(
    datasets_root: Path,
    dataset_id: str,
    episodes: Sequence[Episode],
    *,
    observation_space: gymnasium.spaces.Box,
    action_space: gymnasium.spaces.Box,
    pdiff_block: dict,
    algorithm_name: str,
    description: str = "",
    code_permalink: str | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    author: str | None = None,
    requirements: Sequence[str] | None = None,
) -> Path:
    """Write a new immutable dataset and return its directory. Refuses an id that already exists."""
    final_dir = dataset_dir(datasets_root, dataset_id)
    if final_dir.exists():
        raise ArtifactError(
            f"dataset {dataset_id} already exists at {final_dir}",
            "datasets are immutable: collect into the next version instead",
        )
    if not episodes:
        raise ValueError(f"dataset {dataset_id}: no episodes to write")
    stored = [_normalised(ep, i, observation_space, action_space) for i, ep in enumerate(episodes)]

    # Hidden temp name: a leftover `expert-v0.tmp-N` would make minari.list_local_datasets() raise.
    tmp_dir = final_dir.with_name(f".{final_dir.name}.tmp-{os.getpid()}")
    remove_tree(tmp_dir)
    try:
        data_dir = tmp_dir / "data"
        data_dir.mkdir(parents=True)
        main_file = data_dir / MAIN_FILE
        _write_hdf5(main_file, stored)
        metadata: dict[str, Any] = {
            "dataset_id": dataset_id,
            "total_episodes": len(stored),
            "total_steps": sum(ep.length for ep in stored),
            "data_format": "hdf5",
            "observation_space": box_to_json(observation_space),
            "action_space": box_to_json(action_space),
            "minari_version": MINARI_VERSION,
            "jpeg_encoding": False,
            "dataset_size": round(main_file.stat().st_size / 1e6, 1),
            "algorithm_name": algorithm_name,
            "description": description,
            "pdiff": {
                **json.loads(json.dumps(pdiff_block, default=_plain)),
                "schema_version": SCHEMA_VERSION,
                "content_sha256": content_sha256(stored),
                "file_sha256": sha256_file(main_file),
            },
        }
        scores = {"ref_min_score": ref_min_score, "ref_max_score": ref_max_score}
        metadata.update({k: float(v) for k, v in scores.items() if v is not None})
        if code_permalink is not None:
            metadata["code_permalink"] = code_permalink
        if author is not None:
            metadata["author"] = [author]
        if requirements is not None:
            metadata["requirements"] = list(requirements)
        metadata["pdiff"]["metadata_sha256"] = metadata_sha256(metadata)
        atomic_write_json(data_dir / METADATA_FILE, metadata)
        _ensure_namespaces(datasets_root, dataset_id)
        try:
            atomic_replace_dir(tmp_dir, final_dir)
        except OSError as exc:
            raise ArtifactError(
                f"dataset {dataset_id} could not be moved into place at {final_dir}: {exc.strerror}",
                "another process may have written the same id; collect into the next version",
            ) from exc
    finally:
        remove_tree(tmp_dir)
    return final_dir
