"""VP schedule, forward noising and the DDPM reverse step: formulas, exactness, distribution."""

from __future__ import annotations

import math

import pytest
import torch
from diffusion_cases import seeded

from pdiff.diffusion import VPSchedule, denoising_loss, sample
from pdiff.errors import UsageError


def test_betas_match_diffusion_ql_for_five_steps() -> None:
    schedule = VPSchedule()
    assert schedule.betas.dtype == torch.float32
    assert [round(b, 3) for b in schedule.betas.tolist()] == [0.196, 0.459, 0.636, 0.755, 0.835]


@pytest.mark.parametrize("steps", [1, 5, 20])
def test_alphas_and_cumulative_products_follow_the_betas(steps: int) -> None:
    schedule = VPSchedule(steps=steps)
    assert schedule.betas.shape == (steps,)
    torch.testing.assert_close(schedule.alphas, 1.0 - schedule.betas)
    torch.testing.assert_close(schedule.alphas_cumprod, torch.cumprod(schedule.alphas, 0))
    assert bool((schedule.betas > 0).all()) and bool((schedule.betas < 1).all())


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"beta_min": -0.1}, {"beta_min": 2.0, "beta_max": 1.0}])
def test_invalid_schedules_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        VPSchedule(**kwargs)


def test_add_noise_is_the_closed_form_marginal_per_row() -> None:
    schedule = VPSchedule()
    generator = seeded(0)
    x0, noise = torch.randn(5, 3, 4, generator=generator), torch.randn(5, 3, 4, generator=generator)
    n = torch.tensor([1, 2, 3, 4, 5])
    noisy = schedule.add_noise(x0, noise, n)
    cumulative = 1.0
    for row, beta in enumerate(schedule.betas.double().tolist()):
        cumulative *= 1.0 - beta
        expected = math.sqrt(cumulative) * x0[row] + math.sqrt(1.0 - cumulative) * noise[row]
        torch.testing.assert_close(noisy[row], expected)


@pytest.mark.parametrize("bad", [0, 6])
def test_add_noise_rejects_steps_outside_one_to_n(bad: int) -> None:
    x0 = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="outside 1..5"):
        VPSchedule().add_noise(x0, x0, torch.tensor([1, bad]))


def test_add_noise_matches_diffusers() -> None:
    import diffusers  # the oracle: in the dev extra (pdiff[test-oracles]), never skipped

    schedule = VPSchedule()
    oracle = diffusers.DDPMScheduler(num_train_timesteps=5, trained_betas=schedule.betas.numpy())
    torch.testing.assert_close(oracle.alphas_cumprod.float(), schedule.alphas_cumprod)
    generator = seeded(1)
    x0, noise = torch.randn(5, 7, generator=generator), torch.randn(5, 7, generator=generator)
    n = torch.arange(1, 6)
    torch.testing.assert_close(schedule.add_noise(x0, noise, n), oracle.add_noise(x0, noise, n - 1))


def test_posterior_std_is_zero_at_step_one_and_follows_the_ddpm_variance() -> None:
    schedule = VPSchedule()
    betas, alpha_bar = schedule.betas.double(), schedule.alphas_cumprod.double()
    assert schedule.posterior_std(1) == 0.0
    for n in range(2, 6):
        variance = betas[n - 1] * (1 - alpha_bar[n - 2]) / (1 - alpha_bar[n - 1])
        assert schedule.posterior_std(n) == pytest.approx(math.sqrt(float(variance)), rel=1e-6)
    with pytest.raises(ValueError):
        schedule.posterior_std(6)


def test_reverse_step_one_with_the_true_noise_returns_x0_exactly() -> None:
    schedule = VPSchedule()
    generator = seeded(2)
    x0, eps = torch.randn(16, 4, generator=generator), torch.randn(16, 4, generator=generator)
    x1 = schedule.add_noise(x0, eps, torch.ones(16, dtype=torch.long))
    torch.testing.assert_close(schedule.reverse_step(x1, eps, 1, None), x0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_reverse_step_with_the_true_noise_has_the_posterior_mean_and_marginal(n: int) -> None:
    schedule = VPSchedule()
    betas, alphas, alpha_bar = (
        t.double() for t in (schedule.betas, schedule.alphas, schedule.alphas_cumprod)
    )
    generator = seeded(n)
    x0 = torch.full((200_000,), 0.7)
    eps = torch.randn(x0.shape, generator=generator)
    x_n = schedule.add_noise(x0, eps, torch.full(x0.shape, n))
    # With the true ε the mean is DDPM's posterior mean μ̃(x^n, x0) exactly.
    posterior_mean = (
        alpha_bar[n - 2].sqrt() * betas[n - 1] * x0 + alphas[n - 1].sqrt() * (1 - alpha_bar[n - 2]) * x_n
    ) / (1 - alpha_bar[n - 1])
    mean_step = schedule.reverse_step(x_n, eps, n, torch.zeros_like(x0))
    torch.testing.assert_close(mean_step, posterior_mean.float(), rtol=1e-5, atol=1e-5)
    # With noise, x^{n-1} is distributed as q(x^{n-1} | x0) = N(√ᾱ_{n-1} x0, 1 − ᾱ_{n-1}).
    previous = schedule.reverse_step(x_n, eps, n, torch.randn(x0.shape, generator=generator))
    assert float(previous.mean()) == pytest.approx(0.7 * math.sqrt(alpha_bar[n - 2]), abs=0.01)
    assert float(previous.var()) == pytest.approx(float(1 - alpha_bar[n - 2]), abs=0.01)


def test_reverse_step_needs_noise_above_step_one() -> None:
    with pytest.raises(ValueError, match="needs noise"):
        VPSchedule().reverse_step(torch.zeros(2, 3), torch.zeros(2, 3), 2, None)


def test_chain_with_an_oracle_denoiser_lands_on_its_point_mass() -> None:
    # For data that is a single point x0 the true ε of x^n is known in closed form; the chain must return x0.
    schedule = VPSchedule()
    alpha_bar = schedule.alphas_cumprod
    x0 = torch.tensor([0.3, -1.2, 2.0])

    def oracle(x: torch.Tensor, n: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        a = alpha_bar[n - 1].unsqueeze(-1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    out = sample(oracle, schedule, torch.zeros(4, 1), (4, 3), generator=seeded(3))
    torch.testing.assert_close(out, x0.expand(4, 3), rtol=1e-4, atol=1e-4)


def test_x0_prediction_learns_x0_and_a_perfect_x0_predictor_samples_it_exactly() -> None:
    schedule = VPSchedule(prediction="x0")
    generator = seeded(7)
    x0 = torch.randn(8, 6, generator=generator)
    cond = torch.zeros(8, 2)

    def oracle(x: torch.Tensor, n: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x0  # the true x0 whatever the noisy input

    assert float(denoising_loss(oracle, schedule, x0, cond, generator=seeded(8))) == 0.0
    torch.testing.assert_close(sample(oracle, schedule, cond, x0.shape, generator=seeded(9)), x0)
    # Its prediction is clipped at every step: an oracle outside the bounds lands on them.
    low, high = torch.full((6,), -0.5), torch.full((6,), 0.5)
    clipped = sample(oracle, schedule, cond, x0.shape, generator=seeded(9), clip=(low, high))
    torch.testing.assert_close(clipped, x0.clamp(-0.5, 0.5))
    # The same network read as an ε-predictor gives something else entirely.
    assert not torch.allclose(sample(oracle, VPSchedule(), cond, x0.shape, generator=seeded(9)), x0, atol=0.1)
    with pytest.raises(UsageError):
        VPSchedule(prediction="v")
