"""Every tuning method of `pdiff tune --method`, by name: the one list of them (config choices, CLI help, the
reproduce matrix, the shared tests and the docs' option tables all read it).

A method module has `tune_task(context) -> TaskResult`, `DEFAULT_LR` (None when nothing is trained) and
`Options`, the pydantic model of its own settings (pdiff.methods.options; the tune config's section named as
the method). A weight-changing one also has `attach(model, options)` (see pdiff.methods.finetuning): eval
then rebuilds each (seed, task)'s model from the frozen Prompt-DT plus the tuned tensors; the others are
evaluated through their prompts alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from pdiff.errors import UsageError
from pdiff.methods import adaptor, full_ft, lora, prompt_diffuser, ptdt, real_prompt, soft_prompt
from pdiff.methods.options import MethodOptions

METHODS: dict[str, ModuleType] = {
    "prompt-diffuser": prompt_diffuser,
    "prompt-dt": real_prompt,
    "soft-prompt": soft_prompt,
    "adaptor": adaptor,
    "lora": lora,
    "ptdt": ptdt,
    "full-ft": full_ft,
}
DEFAULT_METHOD = "prompt-diffuser"
NEEDS_DIFFUSE = {"prompt-diffuser"}
EVAL_ONLY_METHODS = ("full-data", "random-prompt")  # rows made by eval alone, no tune method
_EVAL_ONLY_HOW = {
    "full-data": "a Prompt-DT trained on the test tasks too: `pdiff pretrain --include-test-tasks`, then "
    "`pdiff eval --pretrain RUN`",
    "random-prompt": "the control: `pdiff eval --pretrain RUN --prompt random`",
}


def check_methods(methods: list[str], flag: str = "--methods") -> list[str]:
    """`methods` without repeats, each a tune method or an eval-only row; a UsageError naming the first
    unknown one (or an empty list) otherwise."""
    known = [*METHODS, *EVAL_ONLY_METHODS]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise UsageError(
            f"unknown method {unknown[0] if unknown else '(none)'!r} for {flag}",
            hint=f"choose from {', '.join(known)}",
        )
    return list(dict.fromkeys(methods))


def not_a_tune_method(method: object) -> str | None:
    """How a report row that no tune run makes (full-data, the random prompt) is made; None for others."""
    if not isinstance(method, str) or method not in _EVAL_ONLY_HOW:
        return None
    return f"{method} is not a tuning method: it is {_EVAL_ONLY_HOW[method]}"


def trains(method: str | None) -> bool:
    """Whether `method` is a tuning method that trains anything (full-data, a pretrain, is none)."""
    return method in METHODS and METHODS[method].DEFAULT_LR is not None


def changes_weights(method: str) -> bool:
    return hasattr(METHODS[method], "attach")


def options_model(method: str) -> type[MethodOptions]:
    return METHODS[method].Options


def option_sections() -> dict[str, type[MethodOptions]]:
    """The methods that have options of their own, with their models: the tune config's sections."""
    return {name: module.Options for name, module in METHODS.items() if module.Options.model_fields}


def others_options(method: str, keys: Iterable[str]) -> list[str]:
    """The dotted setting keys among `keys` that set an option of another method than `method`."""
    others = set(option_sections()) - {method}
    return [key for key in keys if key.partition(".")[0] in others]
