"""Reduced precision (pdiff.models.precision): bf16 autocast trains the Prompt-DT and the denoiser to the
losses fp32 reaches, keeps float32 weights and hands float32 back."""

from __future__ import annotations

import pytest
import torch
from diffusion.diffusion_cases import dm_loss, small_denoiser
from prompt_dt_cases import example_inputs

from pdiff.compute import Compute, use_precision
from pdiff.diffusion import VPSchedule
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig, action_loss

# bf16 keeps 8 bits of mantissa: over a short training run the loss curves agree to a few per cent.
LOSS_TOLERANCE = 0.05


def train(model: torch.nn.Module, loss_of, precision: str, steps: int) -> tuple[float, float]:
    """(first loss, mean of the last 30) of `steps` Adam steps in `precision`; step i's loss is
    loss_of(model, i), so both precisions see the same batches and noise."""
    use_precision(model, Compute("cpu", 1, precision, "test", ""))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = loss_of(model, len(losses))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses[0], sum(losses[-30:]) / 30


def prompt_dt_loss(model: torch.nn.Module, step: int) -> torch.Tensor:
    inputs = example_inputs(model.config, batch=8, seed=step)
    target = torch.tanh(inputs["states"][..., : model.config.act_dim])  # a learnable map from states
    return action_loss(model(**inputs), target, inputs["attention_mask"])


@pytest.mark.parametrize(
    "build, loss_of",
    [
        (
            lambda: PromptDT(PromptDTConfig(6, 3, embed_dim=32, n_layer=1, context_len=5, dropout=0.0)),
            prompt_dt_loss,
        ),
        (lambda: small_denoiser(0), lambda model, step: dm_loss(model, VPSchedule(steps=5), seed=step)),
    ],
    ids=["prompt-dt", "denoiser"],
)
def test_bf16_training_reaches_the_loss_fp32_reaches(build, loss_of):
    torch.manual_seed(0)
    fp32_model = build()
    bf16_model = build()
    bf16_model.load_state_dict(fp32_model.state_dict())
    first32, last32 = train(fp32_model, loss_of, "fp32", 200)
    first16, last16 = train(bf16_model, loss_of, "bf16", 200)
    assert last32 < 0.7 * first32 and last16 < 0.7 * first16  # both learned
    assert abs(last16 - last32) <= LOSS_TOLERANCE * last32, (last16, last32)
    assert all(p.dtype == torch.float32 for p in bf16_model.parameters())  # weights stay float32


def test_a_bf16_model_hands_back_float32():
    model = PromptDT(PromptDTConfig(6, 3, embed_dim=32, n_layer=2, context_len=5)).eval()
    inputs = example_inputs(model.config)
    reference = model(**inputs)
    use_precision(model, Compute("cpu", 1, "bf16", "test", ""))
    reduced = model(**inputs)
    assert reduced.dtype == torch.float32 and model.act(**inputs).dtype == torch.float32
    assert torch.allclose(reduced, reference, atol=0.05) and not torch.equal(reduced, reference)
