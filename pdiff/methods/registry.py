"""Every tuning method of `pdiff tune --method`, by name.

A method module has `tune_task(context) -> TaskResult` and `DEFAULT_LR` (None when nothing is trained). A weight-changing one also has
`attach(model, options)` (see pdiff.methods.finetuning): eval then rebuilds each (seed, task)'s model from the
frozen Prompt-DT plus the tuned tensors; the others are evaluated through their prompts alone.
"""

from __future__ import annotations

from types import ModuleType

from pdiff.methods import adaptor, full_ft, lora, prompt_diffuser, prompt_dt, ptdt, soft_prompt

METHODS: dict[str, ModuleType] = {
    "prompt-diffuser": prompt_diffuser,
    "prompt-dt": prompt_dt,
    "soft-prompt": soft_prompt,
    "adaptor": adaptor,
    "lora": lora,
    "ptdt": ptdt,
    "full-ft": full_ft,
}
NEEDS_DIFFUSE = {"prompt-diffuser"}


def changes_weights(method: str) -> bool:
    return hasattr(METHODS[method], "attach")
