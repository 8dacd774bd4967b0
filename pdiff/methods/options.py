"""Each tuning method's own settings: a pydantic model `Options` in the method's module, set in the tune
config's section named as the method (`pdiff tune --set ptdt.population=15`;
`pdiff config show tune --method ptdt`).

Tune configs recorded before the sections existed held these options as flat settings (`ptdt_population`,
`lora_rank`, ...); `nest_flat_options` reads them into their sections, so those runs still load, resume and
count as done.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class MethodOptions(BaseModel):
    """Base of every method's `Options`: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def trains(self) -> bool:
        """Whether a method that can train does under these options (the selection has nothing to choose
        where it does not)."""
        return True


# Flat tune setting of an older pdiff → (method, option). Only these names ever existed: new options go in
# their method's section from the start.
FLAT_OPTIONS: dict[str, tuple[str, str]] = {
    "adapt": ("prompt-diffuser", "adapt"),
    "guidance": ("prompt-diffuser", "guidance"),
    "segment_source": ("prompt-diffuser", "segment_source"),
    "lam": ("prompt-diffuser", "lam"),
    "adapter_width": ("adaptor", "width"),
    "lora_rank": ("lora", "rank"),
    "lora_alpha": ("lora", "alpha"),
    "lora_targets": ("lora", "targets"),
    "ptdt_population": ("ptdt", "population"),
    "ptdt_sigma": ("ptdt", "sigma"),
    "ptdt_lr_decay": ("ptdt", "lr_decay"),
    "ptdt_perturb": ("ptdt", "perturb"),
    "ptdt_online": ("ptdt", "online"),
    "ptdt_batches": ("ptdt", "batches"),
    "ptdt_rollouts": ("ptdt", "rollouts"),
    "ptdt_horizon": ("ptdt", "horizon"),
}


def nest_flat_options(config: dict[str, Any]) -> dict[str, Any]:
    """A tune config with every flat method option (FLAT_OPTIONS) moved into its method's section."""
    nested = {key: value for key, value in config.items() if key not in FLAT_OPTIONS}
    for key, (method, option) in FLAT_OPTIONS.items():
        if key in config:
            nested[method] = {**(nested.get(method) or {}), option: config[key]}
    return nested


def recorded_options(config: dict[str, Any], method: str) -> dict[str, Any]:
    """`method`'s options as a tune run recorded them (either form), without defaults filled in."""
    return dict(nest_flat_options(config).get(method) or {})
