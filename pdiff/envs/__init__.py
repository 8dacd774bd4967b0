"""Task families (`--env`): cheetah-vel, cheetah-dir, ant-dir, their out-of-distribution splits
(cheetah-vel-ood, ant-dir-ood; pdiff.envs.ood) and metaworld-<task>.

Importing this package is cheap: simulators are imported when an env is made (and Meta-World, without
building any benchmark, when the Meta-World family names are listed).
"""

from __future__ import annotations

import difflib

from pdiff.envs.base import TaskFamily
from pdiff.envs.locomotion import ANT_DIR, CHEETAH_DIR, CHEETAH_VEL
from pdiff.envs.metaworld_family import FAMILY_PREFIX, metaworld_family
from pdiff.envs.metaworld_ml1 import scripted_tasks
from pdiff.envs.ood import ANT_DIR_OOD, CHEETAH_VEL_OOD
from pdiff.errors import UsageError

__all__ = ["TaskFamily", "family_names", "get_family", "ood_variant"]

_LOCOMOTION = {
    family.name: family for family in (CHEETAH_VEL, CHEETAH_DIR, ANT_DIR, CHEETAH_VEL_OOD, ANT_DIR_OOD)
}


_OOD_OF = {family.ood.base: name for name, family in _LOCOMOTION.items() if family.ood}


def ood_variant(name: str) -> str | None:
    """The out-of-distribution family built on family `name` (ant-dir → ant-dir-ood), if there is one."""
    return _OOD_OF.get(name)


def family_names() -> list[str]:
    """Every family name: the locomotion ones (the paper's, then the out-of-distribution splits), then
    "metaworld-<task>" for each ML1 task with a scripted expert policy."""
    return [*_LOCOMOTION, *(f"{FAMILY_PREFIX}{task}" for task in scripted_tasks())]


def get_family(name: str) -> TaskFamily:
    """The family called `name`; UsageError (with close matches) when there is none."""
    if name in _LOCOMOTION:
        return _LOCOMOTION[name]
    names = family_names()
    if name in names:
        return metaworld_family(name.removeprefix(FAMILY_PREFIX))
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    suggestion = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise UsageError(
        f"unknown task family {name!r}",
        hint=f"{suggestion}choose one of: {', '.join(_LOCOMOTION)}, or metaworld-<task> for any of "
        f"{len(names) - len(_LOCOMOTION)} Meta-World tasks such as metaworld-reach (see `pdiff envs`)",
    )
