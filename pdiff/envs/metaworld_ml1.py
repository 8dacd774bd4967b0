"""Meta-World's ML1 benchmarks as pdiff reads them: which tasks have a scripted policy, and a task's
benchmark at the seed every `metaworld-<task>` family is defined by. Both the families and the frozen goals
read it; metaworld itself is imported only when asked.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import metaworld

ML1_SEED = 1


def scripted_tasks() -> list[str]:
    """ML1 task names (without "-v3") whose env has a scripted `Sawyer*V3Policy`; cheap (no benchmark)."""
    return list(_scripted_tasks())


@functools.cache
def _scripted_tasks() -> tuple[str, ...]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP

    return tuple(sorted(name.removesuffix("-v3") for name in ALL_V3_ENVIRONMENTS if name in ENV_POLICY_MAP))


@functools.cache
def ml1_benchmark(task: str) -> metaworld.ML1:
    """The ML1 benchmark of one task, built once per process (building it takes about 1.5 s)."""
    import metaworld

    return metaworld.ML1(f"{task}-v3", seed=ML1_SEED)
