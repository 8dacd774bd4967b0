"""Out-of-distribution families (the paper's Table 3): a parametric family's own tasks, re-split so that every
test task's parameter lies outside the range the training tasks cover.

The paper does not publish its split (docs/families.md); ours, shown by `pdiff envs`:
- `ant-dir-ood`: test goal angles in [3π/2, 2π) (13 of the 50 reference angles), training angles in [0, 3π/2).
- `cheetah-vel-ood`: test goal velocities above 2.25 m/s (tasks 30..39, the top quarter of the range),
  training velocities 0.075..2.25 m/s.
The tasks are the base family's, so the base family's SAC teacher (trained on every task of it) can collect
their data; the Prompt-DT and the diffusion model only ever read the training tasks (pretrain, diffuse).
Directions lie on a circle: the held-out arc [3π/2, 2π) touches training directions at both of its ends.
"""

from __future__ import annotations

import dataclasses
import math

from pdiff.envs.base import OodSplit, TaskFamily, complement
from pdiff.envs.locomotion import ANT_DIR, CHEETAH_VEL


def ood_family(base: TaskFamily, parameter: str, low: float, high: float, text: str) -> TaskFamily:
    """`base` as `<base>-ood`: test tasks are those whose `parameter` is in [low, high), training tasks the
    rest."""
    split = OodSplit(base=base.name, parameter=parameter, low=low, high=high, text=text)
    test = tuple(t for t in range(base.num_tasks) if split.is_test(base.task_params(t)[parameter]))
    return dataclasses.replace(
        base,
        name=f"{base.name}-ood",
        train_tasks=complement(base.num_tasks, test),
        test_tasks=test,
        ood=split,
    )


ANT_DIR_OOD = ood_family(ANT_DIR, "goal_angle", 1.5 * math.pi, 2 * math.pi, "[3π/2, 2π)")
CHEETAH_VEL_OOD = ood_family(CHEETAH_VEL, "goal_vel", 2.3, math.inf, "2.325..3.0 m/s (above 2.25)")
