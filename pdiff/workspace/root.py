"""The workspace root: where datasets and runs live, how it is found, created and checked."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pdiff import __version__
from pdiff.errors import ArtifactError, UsageError
from pdiff.workspace.atomic import atomic_write_json

WORKSPACE_SCHEMA = 1
WORKSPACE_ENV = "PDIFF_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"
STAGES = ("collect", "pretrain", "diffuse", "tune", "eval", "report", "reproduce")


def resolve_root(flag_value: str | os.PathLike[str] | None) -> Path:
    """--workspace beats $PDIFF_WORKSPACE beats ./workspace."""
    raw = flag_value or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE
    return Path(raw).expanduser()


def template_dir() -> Path:
    """The packaged `workspace_template/` (a wheel maps it into the package; a source checkout has it on
    top)."""
    try:
        spec = importlib.util.find_spec("pdiff.workspace_template")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:  # a namespace package: no __init__.py to copy
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "workspace_template"


UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime(UTC_FORMAT)


def utc_stamp(seconds: float) -> str:
    """The `utc_now()` stamp of a time in seconds since the epoch (e.g. a file's mtime)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime(UTC_FORMAT)


def parse_utc(stamp: str) -> float:
    """Seconds since the epoch of a `utc_now()` stamp."""
    return dt.datetime.strptime(stamp, UTC_FORMAT).replace(tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest_file(self) -> Path:
        return self.root / "workspace.json"

    def stage_dir(self, stage: str) -> Path:
        return self.runs_dir / stage

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Workspace:
        """Open an existing workspace; a missing or foreign directory is a usage error with the fix."""
        path = Path(root)
        if not path.exists():
            raise UsageError(
                f"workspace {path} does not exist",
                hint=f"create it with `pdiff init {path}` or point --workspace / ${WORKSPACE_ENV} at one",
            )
        manifest = path / "workspace.json"
        if not manifest.is_file():
            raise UsageError(
                f"{path} is not a pdiff workspace (no workspace.json)",
                hint=f"run `pdiff init {path}` to make it one, or pass the right --workspace",
            )
        try:
            schema = json.loads(manifest.read_text()).get("schema")
        except (OSError, ValueError, AttributeError) as exc:
            raise ArtifactError(
                f"{manifest} is unreadable ({exc})", hint="restore it or run `pdiff init`"
            ) from exc
        if schema != WORKSPACE_SCHEMA:
            raise ArtifactError(
                f"{manifest} has schema {schema!r}; this pdiff reads schema {WORKSPACE_SCHEMA}",
                hint="use the pdiff version that created the workspace, or start a new one with `pdiff init`",
            )
        return cls(path)

    @classmethod
    def init(cls, root: str | os.PathLike[str]) -> tuple[Workspace, list[str]]:
        """Create a workspace from the template. Existing files are kept; returns what was created."""
        path = Path(root)
        if path.exists() and not path.is_dir():
            raise UsageError(
                f"{path} exists and is not a directory", hint="choose another path for the workspace"
            )
        created: list[str] = []
        path.mkdir(parents=True, exist_ok=True)
        for source in sorted(template_dir().iterdir()):
            if source.name.startswith(("_", ".")) or source.suffix == ".py" or not source.is_file():
                continue
            target = path / source.name
            if not target.exists():
                shutil.copyfile(source, target)
                created.append(source.name)
        for sub in ("datasets", "runs"):
            if not (path / sub).exists():
                (path / sub).mkdir()
                created.append(f"{sub}/")
        workspace = cls(path)
        if not workspace.manifest_file.exists():
            atomic_write_json(
                workspace.manifest_file,
                {"schema": WORKSPACE_SCHEMA, "created": utc_now(), "pdiff_version": __version__},
            )
            created.append("workspace.json")
        return workspace, created
