"""Every SAC teacher the package ships loads (its sha256 matching its provenance) and, in a short rollout on
three of its family's tasks, beats uniform actions by a wide margin."""

from __future__ import annotations

import numpy as np
import pytest

from pdiff.envs import get_family
from pdiff.teachers import TaskEvaluator
from pdiff.teachers.shipped import load_shipped, read_provenance, shipped_families

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]


@pytest.mark.parametrize("family_name", shipped_families())
def test_a_shipped_teacher_beats_uniform_actions(family_name):
    family, provenance = get_family(family_name), read_provenance(family_name)
    expert = load_shipped(family_name, "expert")
    expert.check_family(family)
    load_shipped(family_name, "medium").check_family(family)
    tasks = sorted({0, family.num_tasks // 2, family.num_tasks - 1})
    evaluator = TaskEvaluator(family, episodes=1, seed=provenance["seed"], tasks=tasks)
    rng = np.random.default_rng(0)
    try:
        teacher = np.mean(
            list(evaluator.evaluate(lambda o, c: expert.act(o, c, deterministic=True)).values())
        )
        uniform = np.mean(
            list(evaluator.evaluate(lambda o, c: rng.uniform(-1, 1, (len(o), family.act_dim))).values())
        )
    finally:
        evaluator.close()
    # "Wide": at least half of the gap the provenance records between the teacher and uniform actions.
    gap = provenance["expert"]["eval_return"] - provenance["random_return"]
    assert gap > 0 and teacher - uniform >= 0.5 * gap, (teacher, uniform, gap)


def test_the_paper_and_study_presets_collect_with_teachers_that_ship(tmp_path):
    """Paper-quality data in minutes: every MuJoCo family of the paper (and its OOD variant) collects with a
    teacher inside the package at the paper and study presets, and the quick preset still trains its own."""
    from pdiff.collection.teacher import needs_teacher
    from pdiff.config import resolve_config
    from pdiff.envs import ood_variant
    from pdiff.results.paper import PAPER_FAMILIES
    from pdiff.stages.collect import CollectConfig
    from pdiff.teachers.shipped import teacher_family_name
    from pdiff.workspace.root import Workspace

    workspace, _ = Workspace.init(tmp_path / "w")
    names = list(PAPER_FAMILIES) + [ood for ood in map(ood_variant, PAPER_FAMILIES) if ood]
    families = [get_family(name) for name in names]
    with_teacher = [f for f in families if needs_teacher(f)]
    assert {f.name for f in with_teacher} >= {"cheetah-vel", "cheetah-dir", "ant-dir", "ant-dir-ood"}
    for family in with_teacher:
        for preset in ("paper", "study"):
            config = resolve_config(
                CollectConfig, "collect", workspace=workspace, preset=preset, flags={"env": family.name}
            )
            assert config.teacher_source == "shipped", (family.name, preset)
            assert teacher_family_name(family) in shipped_families(), family.name
        quick = resolve_config(
            CollectConfig, "collect", workspace=workspace, preset="quick", flags={"env": family.name}
        )
        assert quick.teacher_source == "train"
