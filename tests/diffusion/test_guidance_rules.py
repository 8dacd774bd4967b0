"""Gradient combination: each rule's .grad equals its formula; the projection is orthogonal to g_DM."""

from __future__ import annotations

import math

import pytest
import torch
from diffusion_cases import (
    combine,
    plain_dm,
    plain_plm,
    reference_gradient,
    small_denoiser,
    written_gradient,
)
from torch import Tensor, nn

from pdiff.errors import UsageError
from pdiff.methods.guidance import GUIDANCE_RULES, combine_gradients


def formula(rule: str, g_dm: Tensor, g_plm: Tensor, lam: float) -> Tensor:
    """The rule's g, in double precision."""
    g_dm, g_plm = g_dm.double(), g_plm.double()
    u = g_dm / g_dm.norm()
    projected = g_dm + lam * (g_plm - (g_plm @ u) * u)
    return {
        "project": projected,
        "sum": g_dm + lam * g_plm,
        "none": g_dm,
        "plm-only": g_plm,
        "pcgrad": projected if g_plm @ g_dm < 0 else g_dm + lam * g_plm,
        "gpm": projected,  # with a memory of one gradient (what `combine` gives it)
    }[rule]


def assert_close_to(actual: Tensor, expected: Tensor) -> None:
    """Equal up to float32 rounding of the vector as a whole (single entries may lose relative precision)."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6 * float(expected.norm()))


@pytest.mark.parametrize("rule", GUIDANCE_RULES)
@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_written_grad_equals_the_rule_formula(rule: str, lam: float) -> None:
    model = small_denoiser()
    g_dm, g_plm = reference_gradient(model, plain_dm), reference_gradient(model, plain_plm)
    for p in model.parameters():  # stale gradients must be overwritten, not accumulated
        p.grad = torch.full_like(p, 5.0)
    result = combine(model, plain_dm, plain_plm, rule, lam)
    expected = formula(rule, g_dm, g_plm, lam).float()
    assert_close_to(written_gradient(model), expected)
    assert result.rule == rule
    assert result.norm_dm == pytest.approx(float(g_dm.norm()), rel=1e-5)
    assert result.norm_plm == pytest.approx(float(g_plm.norm()), rel=1e-5)
    assert result.cosine == pytest.approx(float(g_dm @ g_plm / (g_dm.norm() * g_plm.norm())), abs=1e-5)
    assert result.norm_combined == pytest.approx(float(expected.norm()), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projected_gradient_is_orthogonal_to_g_dm(seed: int) -> None:
    model = small_denoiser(seed)
    g_dm = reference_gradient(model, plain_dm)
    g_plm = reference_gradient(model, plain_plm)
    result = combine(model, plain_dm, plain_plm, "project")
    g = written_gradient(model).double()
    u = g_dm.double() / g_dm.double().norm()
    assert result.projected
    assert abs(float(g @ u) - float(g_dm.double().norm())) <= 1e-5 * float(g_dm.norm())
    assert abs(float((g - g_dm.double()) @ u)) <= 1e-5 * float(g_plm.norm())
    assert abs(result.projected_dot) <= 1e-5 * float(g_plm.norm())


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_pcgrad_projects_only_conflicting_gradients(sign: float) -> None:
    # L_PLM' = ±k L_DM + L_PLM, with k large enough to fix the sign of g_DM·g_PLM', shares the L_DM graph:
    # this also checks that the first pass keeps that graph.
    model = small_denoiser()
    weight = (
        sign
        * 2.0
        * float(reference_gradient(model, plain_plm).norm() / reference_gradient(model, plain_dm).norm())
    )

    def mixed(m: nn.Module) -> Tensor:
        return weight * plain_dm(m) + plain_plm(m)

    g_dm, g_plm = reference_gradient(model, plain_dm), reference_gradient(model, mixed)
    assert float(g_dm @ g_plm) * sign > 0  # the case the test means to build

    def shared(m: nn.Module) -> tuple[Tensor, Tensor]:
        dm = plain_dm(m)
        return dm, weight * dm + plain_plm(m)

    loss_dm, loss_plm = shared(model)
    result = combine_gradients(list(model.parameters()), loss_dm, loss_plm, rule="pcgrad")
    assert result.projected is (sign < 0)
    assert (result.projected_dot is None) is (sign > 0)
    assert_close_to(written_gradient(model), formula("pcgrad", g_dm, g_plm, 1.0).float())


def test_zero_dm_gradient_skips_the_projection() -> None:
    model = small_denoiser()

    def zero_dm(m: nn.Module) -> Tensor:
        return 0.0 * sum(p.sum() for p in m.parameters())

    g_plm = reference_gradient(model, plain_plm)
    result = combine(model, zero_dm, plain_plm, "project")
    assert not result.projected and result.projected_dot is None and result.cosine is None
    torch.testing.assert_close(written_gradient(model), g_plm)


def test_single_loss_rules_and_unreached_parameters() -> None:
    model = small_denoiser()
    params = list(model.parameters())
    extra = nn.Parameter(torch.ones(3))  # reached by neither loss: its gradient is zero
    result = combine_gradients(params + [extra], plain_dm(model), None, rule="none")
    assert math.isnan(result.norm_plm) and result.cosine is None
    assert torch.equal(extra.grad, torch.zeros(3))
    result = combine_gradients(params, None, plain_plm(model), rule="plm-only")
    assert math.isnan(result.norm_dm)


def test_bad_rules_and_missing_losses_are_refused() -> None:
    model = small_denoiser()
    params = list(model.parameters())
    with pytest.raises(UsageError, match="'dm'"):
        combine_gradients(params, plain_dm(model), plain_plm(model), rule="dm")
    with pytest.raises(UsageError, match="lambda"):
        combine_gradients(params, plain_dm(model), plain_plm(model), rule="sum", lam=-1.0)
    with pytest.raises(ValueError, match="needs loss_plm"):
        combine_gradients(params, plain_dm(model), None, rule="project")
    frozen = nn.Parameter(torch.ones(2), requires_grad=False)
    with pytest.raises(ValueError, match="require grad"):
        combine_gradients(params + [frozen], plain_dm(model), None, rule="none")
