"""The reverse chain: reproducible, clipped, differentiable end to end (through a frozen Prompt-DT), and
a denoiser that actually learns a toy distribution."""

from __future__ import annotations

import pytest
import torch
from diffusion_cases import BATCH, COND_DIM, X_DIM, example_batch, seeded, small_denoiser
from torch import Tensor

from pdiff.diffusion import VPSchedule, denoising_loss, sample
from pdiff.methods.guidance import combine_gradients
from pdiff.models.denoiser import Denoiser, DenoiserConfig
from pdiff.models.prompt_dt import Prompt, PromptDT, PromptDTConfig, action_loss

SCHEDULE = VPSchedule()


def test_sampling_is_reproducible_with_a_seeded_generator() -> None:
    model = small_denoiser()
    _, cond = example_batch()
    first = sample(model, SCHEDULE, cond, (BATCH, X_DIM), generator=seeded(7))
    again = sample(model, SCHEDULE, cond, (BATCH, X_DIM), generator=seeded(7))
    other = sample(model, SCHEDULE, cond, (BATCH, X_DIM), generator=seeded(8))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert not first.requires_grad  # grad=False runs under no_grad


def test_clip_bounds_only_the_chosen_dimensions() -> None:
    model = small_denoiser()
    _, cond = example_batch()
    low = torch.tensor([-1.0, -1.0, -1.0, -float("inf"), -float("inf"), -float("inf")])
    free = sample(model, SCHEDULE, cond, (BATCH, X_DIM), generator=seeded(7))
    clipped = sample(model, SCHEDULE, cond, (BATCH, X_DIM), generator=seeded(7), clip=(low, -low))
    assert bool((free[:, :3].abs() > 1).any())  # else the test shows nothing
    torch.testing.assert_close(clipped[:, :3], free[:, :3].clamp(-1, 1))
    torch.testing.assert_close(clipped[:, 3:], free[:, 3:])


def test_condition_batch_must_match_the_sample_shape() -> None:
    with pytest.raises(ValueError, match="condition batch"):
        sample(small_denoiser(), SCHEDULE, torch.zeros(3, COND_DIM), (BATCH, X_DIM))


def test_a_scalar_of_the_sample_reaches_every_denoiser_parameter() -> None:
    model = small_denoiser()
    _, cond = example_batch()
    x_hat = sample(model, SCHEDULE, cond, (BATCH, X_DIM), generator=seeded(7), grad=True)
    (x_hat**2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def tiny_plm() -> PromptDT:
    torch.manual_seed(0)
    plm = PromptDT(
        PromptDTConfig(state_dim=3, act_dim=2, embed_dim=16, n_layer=1, context_len=4, prompt_len=5)
    )
    return plm.eval().requires_grad_(False)


def test_plm_loss_back_propagates_through_the_chain_but_not_into_the_frozen_plm() -> None:
    plm = tiny_plm()
    steps, (ds, da), prompts = 5, (3, 2), 2
    model = Denoiser(DenoiserConfig(x_dim=steps * (ds + da + 1), cond_dim=2 * steps, hidden=32))
    generator = seeded(0)
    rtg = torch.rand(prompts, steps, 1, generator=generator)
    timesteps = torch.arange(steps).repeat(prompts, 1)
    cond = torch.cat((rtg.squeeze(-1), timesteps / 100.0), dim=-1)
    low = torch.tensor([-float("inf")] * ds + [-1.0] * da + [-float("inf")]).repeat(steps)

    x_hat = sample(
        model,
        SCHEDULE,
        cond,
        (prompts, steps * (ds + da + 1)),
        generator=generator,
        clip=(low, -low),
        grad=True,
    )
    segments = x_hat.view(prompts, steps, ds + da + 1)
    prompt = Prompt(
        states=segments[..., :ds],
        actions=segments[..., ds : ds + da],
        returns_to_go=rtg,
        timesteps=timesteps,
        mask=torch.ones(prompts, steps),
        rows=torch.tensor([0, 0, 1, 1, 1]),
    )
    batch, context = 5, 4
    states, target = (
        torch.randn(batch, context, ds, generator=generator),
        torch.rand(batch, context, da) * 2 - 1,
    )
    predicted = plm(
        states,
        target,
        torch.rand(batch, context, 1, generator=generator),
        torch.arange(context).repeat(batch, 1),
        torch.ones(batch, context),
        prompt,
    )
    loss_plm = action_loss(predicted, target, torch.ones(batch, context))
    (grad_x,) = torch.autograd.grad(loss_plm, x_hat, retain_graph=True)
    grad_x = grad_x.view(prompts, steps, ds + da + 1)
    assert bool(grad_x[..., : ds + da].abs().sum() > 0)  # generated states and actions feed the prompt
    assert bool((grad_x[..., -1] == 0).all())  # the generated reward is not part of the PLM prompt

    loss_dm = denoising_loss(model, SCHEDULE, x_hat.detach(), cond, generator=generator)
    result = combine_gradients(list(model.parameters()), loss_dm, loss_plm, rule="project")
    assert result.norm_plm > 0 and result.projected
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert all(p.grad is None for p in plm.parameters())


def toy_batch(size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two 2-D clusters at ±(1.5, -1), the condition says which."""
    label = torch.randint(0, 2, (size, 1), generator=generator).float() * 2 - 1
    x0 = label * torch.tensor([1.5, -1.0]) + 0.1 * torch.randn(size, 2, generator=generator)
    return x0, label


def test_denoiser_learns_a_toy_conditional_distribution() -> None:
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig(x_dim=2, cond_dim=1, hidden=64))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    x_eval, cond_eval = toy_batch(512, seeded(100))

    def eval_loss() -> float:
        with torch.no_grad():
            return float(denoising_loss(model, SCHEDULE, x_eval, cond_eval, generator=seeded(101)))

    before = eval_loss()
    generator = seeded(1)
    for _ in range(300):
        x0, cond = toy_batch(128, generator)
        loss = denoising_loss(model, SCHEDULE, x0, cond, generator=generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = eval_loss()
    assert after < 0.5 * before, (before, after)
    # Samples land near the cluster the condition names.
    for label in (-1.0, 1.0):
        drawn = sample(model, SCHEDULE, torch.full((256, 1), label), (256, 2), generator=seeded(5))
        assert torch.linalg.vector_norm(drawn.mean(0) - label * torch.tensor([1.5, -1.0])) < 0.3
