"""The tune settings every method shares (`pdiff tune --set steps=…`); the tune stage's config adds one
section per method with options of its own (pdiff.methods.options), and the methods' helpers read these shared
ones."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from pdiff.compute import ComputeConfig
from pdiff.methods.options import MethodOptions, nest_flat_options
from pdiff.methods.registry import DEFAULT_METHOD, METHODS, not_a_tune_method, options_model
from pdiff.methods.selection import grid_for
from pdiff.methods.zero_shot import SETTING_TEXT, ZeroShotSetting

MethodName = Literal[tuple(METHODS)]


class SharedTuneConfig(ComputeConfig):
    """The tune settings every method shares; TuneConfig adds each method's own section."""

    OLDER: ClassVar[dict[str, Any]] = {
        "selection": "off",
        "diffuse_runs": None,
        "pretrain_runs": None,
        "zero_shot_source": "nearest",  # older runs were never zero-shot: the value is never read
        "threads": None,
        "precision": "fp32",
        # before early stopping every trial ran `steps`: scored there alone, which is a fixed budget
        "eval_every": lambda data: max(1, int(data.get("steps") or 1)),
        "patience": 3,
        "tasks": None,  # the test tasks, as before the setting existed
    }
    env: str | None = Field(None, description="Task family (default: that of the input run).")
    method: MethodName = Field(DEFAULT_METHOD, description="Tuning method (docs/tuning-methods.md).")
    shots: int = Field(
        5, ge=0, description="Few-shot episodes per test task; 0: zero-shot (prompt-diffuser, prompt-dt)."
    )
    tasks: list[int] | None = Field(
        None,
        description="Tasks to adapt to (default: the family's test tasks). Training tasks only for "
        "prompt-diffuser and prompt-dt, with few-shot data: the generator's fidelity on data it was trained "
        "on, not a test.",
    )
    zero_shot_source: ZeroShotSetting = Field(
        "nearest",
        description="shots=0 [ours], the same information for both methods: "
        + "; ".join(f"{name}: {text}" for name, text in SETTING_TEXT.items())
        + ".",
    )
    data_kind: str = Field("expert", description="Quality of the few-shot data: expert | medium | random.")
    seeds: list[int] = Field(
        [0, 1, 2],
        min_length=1,
        description="Seeds (one adaptation per seed and task; each its own episodes).",
    )
    diffuse_run: str | None = Field(
        None, description="Diffusion model (prompt-diffuser; default: latest finished)."
    )
    diffuse_runs: list[str] | None = Field(
        None,
        description="prompt-diffuser: one diffusion model per seed, in the order of `seeds`, so that each "
        "seed adapts its own (all from one Prompt-DT); default: diffuse_run for every seed.",
    )
    pretrain_run: str | None = Field(
        None, description="Frozen Prompt-DT (default: the diffuse run's, or latest)."
    )
    pretrain_runs: list[str] | None = Field(
        None,
        description="One frozen Prompt-DT per seed, in the order of `seeds` (trained alike but for their "
        "seed), so that a spread over seeds includes pretraining; default: pretrain_run for every seed.",
    )
    steps: int = Field(
        200,
        ge=0,
        description="Fine-tuning steps per (seed, task) (ptdt: rounds); with selection=holdout the cap, and "
        "the selection chooses how many by early stopping (docs/protocol.md).",
    )
    batch_size: int = Field(32, ge=1, description="Segments per fine-tuning step.")
    selection: Literal["holdout", "off"] = Field(
        "holdout",
        description="holdout: the learning rate (ptdt: η) and the number of steps are chosen together, by "
        "the held-out few-shot episode's action loss (docs/protocol.md); off: use lr and steps.",
    )
    eval_every: int = Field(
        10,
        ge=1,
        description="selection=holdout: score each trial on the held-out episode every this many steps (and "
        "at the cap); a value of `steps` or more scores at the cap alone, a fixed budget.",
    )
    patience: int = Field(
        3, ge=1, description="selection=holdout: a trial stops after this many scores without a new best."
    )
    lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate (ptdt: η) with selection=off. Default per method: "
        + ", ".join(
            f"{name} {module.DEFAULT_LR:.0e}" for name, module in METHODS.items() if module.DEFAULT_LR
        )
        + ".",
    )
    grad_clip: float | None = Field(1.0, gt=0, description="Gradient-norm clip while tuning.")

    @model_validator(mode="before")
    @classmethod
    def _nested_options(cls, data: Any) -> Any:
        """Configs recorded before each method had its own section held its options as flat settings."""
        return nest_flat_options(data) if isinstance(data, dict) else data

    @field_validator("method", mode="before")
    @classmethod
    def _tune_method(cls, value: Any) -> Any:
        """`method: full-data` (from `--method`, `--set` or a config file) says how that row is made."""
        if explanation := not_a_tune_method(value):
            raise ValueError(explanation)
        return value

    def options(self) -> MethodOptions:
        """The tuned method's own options (its section; a method without one has none to set)."""
        return getattr(self, self.method, None) or options_model(self.method)()

    @model_validator(mode="after")
    def _method_lr(self) -> SharedTuneConfig:
        for name, runs in (("diffuse_runs", self.diffuse_runs), ("pretrain_runs", self.pretrain_runs)):
            if runs is not None and len(runs) != len(self.seeds):
                raise ValueError(f"{name} names {len(runs)} runs for {len(self.seeds)} seeds")
        if self.selection == "holdout" and self.lr is not None and grid_for(self.method).get("lr"):
            raise ValueError("lr is chosen by the selection protocol; add selection=off to fix it yourself")
        # Resolved here so a recorded config and a re-requested one compare equal (reproduce's skip test).
        if self.lr is None and self.method in METHODS and self.selection == "off":
            object.__setattr__(self, "lr", METHODS[self.method].DEFAULT_LR)
        return self
