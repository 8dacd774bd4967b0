"""Stage configuration: one pydantic model per stage, resolved from layered sources.

Precedence, lowest to highest: the model's defaults < a preset (`smoke`, `quick`, `study`, `paper`, from the
workspace's config.yaml or the packaged template) < `--config FILE` < `--set a.b=c` < dedicated flags.
Unknown keys and wrong types are rejected with the dotted key and the source that set it.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from pdiff.console import log
from pdiff.errors import UsageError
from pdiff.workspace.root import STAGES, Workspace, template_dir

PRESETS = ("smoke", "quick", "study", "paper")
DEFAULT_PRESET = "quick"


class StageConfig(BaseModel):
    """Base of every stage config: unknown keys are errors, resolved configs are immutable.

    `OLDER` maps settings added later to the value that reproduces what pdiff did before they existed: a
    complete config recorded by an older pdiff (every other field present, e.g. one being resumed) gets
    those values instead of today's defaults, so its run goes on as it started.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    OLDER: ClassVar[dict[str, Any]] = {}

    @field_validator("seeds", check_fields=False)
    @classmethod
    def _seeds_not_negative(cls, seeds: Any) -> Any:
        if isinstance(seeds, list) and any(s < 0 for s in seeds):
            raise ValueError("seeds must be 0 or more")
        return seeds

    @model_validator(mode="before")
    @classmethod
    def _older_record(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.OLDER:
            return data
        missing = set(cls.model_fields) - set(data)
        if not missing or not missing <= set(cls.OLDER):
            return data
        filled = {
            key: cls.OLDER[key](data) if callable(cls.OLDER[key]) else cls.OLDER[key] for key in missing
        }
        return {**data, **filled}


C = TypeVar("C", bound=StageConfig)


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"{what} {path} does not exist", hint="check the path") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(
            f"{what} {path} is not valid YAML ({exc.__class__.__name__})", hint="fix the file"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(
            f"{what} {path} must be a mapping of stage names to settings", hint="see `pdiff init`"
        )
    return data


def load_presets(workspace: Workspace | None) -> tuple[dict[str, Any], Path]:
    """The presets of the workspace's config.yaml, over those of the packaged template.

    A stage section the workspace file lacks (say, a stage added by a newer pdiff than the one that ran
    `pdiff init`) comes from the template, so older workspaces keep working with sensible presets.
    """
    template_path = template_dir() / "config.yaml"
    presets = _presets_in(template_path) if template_path.is_file() else {}
    source = template_path
    if workspace is not None and workspace.config_file.is_file():
        source = workspace.config_file
        for name, stages in _presets_in(source).items():
            merged = dict(presets.get(name) or {})
            merged.update(stages or {})
            presets[name] = merged
    return presets, source


_WARNED: set[tuple[Path, str, str]] = set()


def warn_if_not_packaged(workspace: Workspace | None, preset: str, stage: str) -> None:
    """Say once if the workspace's copy of a preset's stage section is not this pdiff's: a workspace keeps the
    presets `pdiff init` copied, so a study run there may not be the documented preset any more."""
    if (
        workspace is None
        or not workspace.config_file.is_file()
        or (workspace.config_file, preset, stage) in _WARNED
    ):
        return
    template_path = template_dir() / "config.yaml"
    packaged = (_presets_in(template_path).get(preset) or {}).get(stage)
    own = (_presets_in(workspace.config_file).get(preset) or {}).get(stage)
    if packaged is None or own is None:
        return
    theirs, ours = flatten_dotted(own), flatten_dotted(packaged)
    differ = [k for k in sorted(theirs.keys() | ours.keys()) if theirs.get(k) != ours.get(k)]
    if differ:
        _WARNED.add((workspace.config_file, preset, stage))
        shown = ", ".join(
            f"{k} {theirs.get(k, '(unset)')} (packaged: {ours.get(k, '(unset)')})" for k in differ[:3]
        )
        log.warning(
            "%s: preset %s's %s settings are not this pdiff's: %s%s; "
            "copy %s over it to take the packaged presets",
            workspace.config_file,
            preset,
            stage,
            shown,
            f" and {len(differ) - 3} more" if len(differ) > 3 else "",
            template_path,
        )


def _presets_in(path: Path) -> dict[str, Any]:
    presets = _read_yaml(path, "config file").get("presets", {}) or {}
    if not isinstance(presets, dict) or not all(isinstance(v, dict | None) for v in presets.values()):
        raise UsageError(
            f"{path}: `presets` must map preset names to stage sections", hint="compare with `pdiff init`"
        )
    return presets


def default_preset(workspace: Workspace | None) -> str:
    path = workspace.config_file if workspace is not None else template_dir() / "config.yaml"
    if path.is_file():
        return str(_read_yaml(path, "config file").get("default_preset", DEFAULT_PRESET))
    return DEFAULT_PRESET


def parse_set(item: str) -> tuple[str, Any]:
    """`a.b=c` → ("a.b", c) with c parsed as YAML (numbers, booleans, lists)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set {item!r} is not KEY=VALUE", hint="write e.g. --set optim.lr=3e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # YAML 1.1 reads off/on/yes/no as booleans: `selection=off` means the word
    if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip(), value


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten_dotted(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_dotted(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def resolve_config(
    model: type[C],
    stage: str,
    *,
    workspace: Workspace | None,
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> C:
    """Build the stage config from its layers and validate it, naming the layer of any bad key."""
    layers: list[tuple[str, dict[str, Any]]] = []
    presets, presets_path = load_presets(workspace)
    chosen = preset or default_preset(workspace)
    if chosen not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise UsageError(
            f"unknown preset {chosen!r} (known: {known})", hint=f"presets live in {presets_path}"
        )
    warn_if_not_packaged(workspace, chosen, stage)
    layers.append((f"preset {chosen} ({presets_path})", (presets[chosen] or {}).get(stage, {}) or {}))
    if config_file is not None:
        data = _read_yaml(Path(config_file), "--config")
        unknown_stages = sorted(set(data) - set(STAGES))
        if unknown_stages:
            raise UsageError(
                f"--config {config_file}: unknown section {unknown_stages[0]!r}",
                hint=f"top-level keys are stage names: {', '.join(sorted(STAGES))}",
            )
        layers.append((f"--config {config_file}", data.get(stage, {}) or {}))
    set_layer: dict[str, Any] = {}
    for item in overrides or []:
        key, value = parse_set(item)
        _set_dotted(set_layer, key, value)
    layers.append(("--set", set_layer))
    flag_layer: dict[str, Any] = {}
    for key, value in (flags or {}).items():
        if value is not None:
            _set_dotted(flag_layer, key, value)
    layers.append(("flags", flag_layer))

    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, layer in layers:
        if not isinstance(layer, dict):
            raise UsageError(
                f"{source}: settings for {stage} must be a mapping", hint="compare with the template"
            )
        merged = _merge(merged, layer)
        origin.update({key: source for key in flatten_dotted(layer)})
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise _explain(exc, stage, origin) from None


def _explain(exc: ValidationError, stage: str, origin: dict[str, str]) -> UsageError:
    first = exc.errors()[0]
    dotted = ".".join(str(part) for part in first["loc"])
    source = origin.get(dotted) or next(
        (s for k, s in origin.items() if k.startswith(dotted + ".")), "defaults"
    )
    if first["type"] == "extra_forbidden":
        return UsageError(
            f"unknown {stage} setting {dotted!r} (from {source})",
            hint=f"see the known settings with `pdiff config show {stage}`",
        )
    hint = f"see `pdiff config show {stage}` for the type and default"
    if first["type"] == "literal_error":  # a misspelt choice: name the closest allowed values
        allowed = re.findall(r"'([^']*)'", str(first.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(first.get("input")), allowed, n=2, cutoff=0.5)
        hint = (
            f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        ) + f"choose one of: {', '.join(allowed)}"
    return UsageError(
        f"bad {stage} setting {dotted}={first.get('input')!r} (from {source}): {first['msg']}", hint=hint
    )


_STAGE_MODELS: dict[str, type[StageConfig]] = {}


def register_stage_config(stage: str, model: type[StageConfig]) -> None:
    _STAGE_MODELS[stage] = model


def stage_models() -> dict[str, type[StageConfig]]:
    return dict(_STAGE_MODELS)


def type_label(annotation: Any) -> str:
    """A readable type: `prompt-diffuser | lora | …` for a Literal, `list[int]`, `int | None`."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(str(a) for a in args)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return " | ".join(type_label(a) for a in args)
    if args:
        origin = getattr(typing.get_origin(annotation), "__name__", "list")
        return f"{origin}[{', '.join(type_label(a) for a in args)}]"
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def describe(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, description) for every field, nested models expanded."""
    rows: list[tuple[str, str, Any, str]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(describe(annotation, f"{prefix}{name}."))
            continue
        type_name = type_label(annotation)
        rows.append(
            (
                f"{prefix}{name}",
                type_name,
                info.get_default(call_default_factory=True),
                info.description or "",
            )
        )
    return rows
