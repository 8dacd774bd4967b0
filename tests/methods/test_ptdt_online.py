"""Online PTDT ranks candidate prompts by their simulator return: each score is the mean return of real
Meta-World episodes with that prompt, and the update moves towards the better candidates."""

from __future__ import annotations

import numpy as np
import pytest
from method_suite import ptdt_context

from pdiff.methods import ptdt
from pdiff.rollouts.rollout import rollout
from pdiff.rollouts.simulators import EnvPool

pytestmark = pytest.mark.metaworld


def test_each_score_is_that_candidates_own_simulator_return(trained):
    ws, pretrain, _ = trained
    context = ptdt_context(ws, pretrain, ptdt={"online": True, "horizon": 8, "perturb": "states-actions-rtg"})
    family, fields = context.settings.family, ptdt.FIELDS["states-actions-rtg"]
    base = context.fewshot_prompts.for_task(context.task, context.rng)
    x = ptdt.flatten(base, fields)
    # three candidates far apart: the real prompt, and two with states pushed well off it
    trials = np.stack([x, x + 3.0 * np.sign(np.sin(np.arange(len(x)))), x - 3.0])
    candidates = ptdt.candidates_from(trials, base, fields, context.policy.max_ep_len)
    seed_state = context.rng.bit_generator.state
    with EnvPool() as pool:
        scores = ptdt.online_scores(context, candidates, 2, pool)
    context.rng.bit_generator.state = seed_state  # the same resets, one candidate at a time
    resets = [int(s) for s in context.rng.integers(0, 2**31 - 1, size=2)]
    horizon = family.resolve_horizon(8)
    for index in range(len(trials)):
        alone = ptdt.candidates_from(trials[index : index + 1], base, fields, context.policy.max_ep_len)
        episodes = rollout(
            family, context.policy, alone.to_prompt(), [context.task], [resets], horizon=horizon
        )
        assert scores[index] == pytest.approx(np.mean([e.episode_return for e in episodes]), rel=1e-6)
    assert len(set(np.round(scores, 6))) == 3, scores  # distinct returns: a ranking to follow


def test_the_update_moves_from_the_worse_candidate_to_the_better(trained):
    """With two candidates the rank estimator's step is exactly lr · (x_better − x_worse)."""
    ws, pretrain, _ = trained
    options = {
        "online": True,
        "population": 2,
        "rollouts": 2,
        "horizon": 8,
        "perturb": "states-actions-rtg",
        "sigma": 1.0,
    }
    context = ptdt_context(ws, pretrain, steps=1, lr=0.5, selection="off", ptdt=options)
    seed_state = context.rng.bit_generator.state
    result = ptdt.tune_task(context)
    assert result.tunable_parameters == 5 * (39 + 4 + 1)

    context.rng.bit_generator.state = seed_state  # replay the round: the same two candidates and resets
    fields = ptdt.FIELDS["states-actions-rtg"]
    base = context.fewshot_prompts.for_task(context.task, context.rng)
    x = ptdt.flatten(base, fields)
    trials = x + context.rng.standard_normal((2, len(x)))
    with EnvPool() as pool:
        returns = ptdt.online_scores(
            context, ptdt.candidates_from(trials, base, fields, context.policy.max_ep_len), 2, pool
        )
    assert returns[0] != returns[1], returns
    better, worse = trials[np.argmax(returns)], trials[np.argmin(returns)]
    moved = ptdt.flatten(result.prompt, fields) - x
    np.testing.assert_allclose(moved, 0.5 * (better - worse), atol=1e-4)
