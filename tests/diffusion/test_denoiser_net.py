"""The ε-network: shapes, configuration, parameter counts against the paper's denoiser table
(docs/method.md)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import torch
from diffusion_cases import COND_DIM, X_DIM, small_denoiser
from support.model_suite import assert_save_load_identical

from pdiff.methods.diffusion_settings import DiffusionSettings
from pdiff.models.denoiser import Denoiser, DenoiserConfig, count_parameters


def expected_count(config: DenoiserConfig) -> int:
    """Diffusion-QL's template counted by hand: time MLP, `layers` hidden layers, linear output."""
    te, h = config.time_embed, config.hidden
    time_mlp = te * 2 * te + 2 * te + 2 * te * te + te
    first = (config.x_dim + te + config.cond_dim) * h + h
    hidden = (config.layers - 1) * (h * h + h)
    return time_mlp + first + hidden + h * config.x_dim + config.x_dim


@pytest.mark.parametrize(
    ("x_dim", "hidden", "millions"),
    [
        (135, 256, 0.21),
        (180, 256, 0.23),
        (220, 256, 0.25),
        (135, 200, 0.14),
        (180, 200, 0.16),
        (220, 200, 0.18),
    ],
)
def test_parameter_counts_match_the_paper_table(x_dim: int, hidden: int, millions: float) -> None:
    config = DenoiserConfig(x_dim=x_dim, cond_dim=10, hidden=hidden)
    count = count_parameters(Denoiser(config))
    assert count == expected_count(config)
    assert round(count / 1e6, 2) == millions


def test_count_parameters_can_skip_frozen_ones() -> None:
    model = small_denoiser()
    model.time_mlp.requires_grad_(False)
    frozen = sum(p.numel() for p in model.time_mlp.parameters())
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - frozen


def test_output_shape_and_dependence_on_step_and_condition() -> None:
    model = small_denoiser()
    x, cond = torch.randn(4, X_DIM), torch.randn(4, COND_DIM)
    out = model(x, torch.full((4,), 3), cond)
    assert out.shape == (4, X_DIM)
    assert not torch.allclose(out, model(x, torch.full((4,), 2), cond))
    assert not torch.allclose(out, model(x, torch.full((4,), 3), cond + 1.0))


def test_mismatched_inputs_are_rejected() -> None:
    model = small_denoiser()
    with pytest.raises(ValueError, match="x_dim 6"):
        model(torch.randn(4, X_DIM + 1), torch.ones(4, dtype=torch.long), torch.randn(4, COND_DIM))


def test_config_round_trip_and_validation() -> None:
    config = DenoiserConfig(220, 10, hidden=200)
    assert DenoiserConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="width"):
        DenoiserConfig.from_dict({**config.to_dict(), "width": 3})
    with pytest.raises(ValueError, match="time_embed"):
        DenoiserConfig(220, 10, time_embed=15)
    with pytest.raises(ValueError, match="hidden"):
        DenoiserConfig(220, 10, hidden=0)


def test_save_load_gives_identical_outputs(tmp_path) -> None:
    """The shared checker (tests/support/model_suite.py), with the denoiser built as `pdiff tune` builds
    it."""
    model = small_denoiser(seed=4)
    x, cond = torch.randn(4, X_DIM), torch.randn(4, COND_DIM)
    loaded = assert_save_load_identical(
        model,
        lambda payload: Denoiser(DenoiserConfig.from_dict(payload["architecture"])),
        {"x": x, "n": torch.tensor([1, 2, 3, 4]), "cond": cond},
        tmp_path,
        model_config={"architecture": model.config.to_dict()},
    )
    assert isinstance(loaded, Denoiser) and loaded.config == model.config


def test_the_diffuse_settings_accept_exactly_the_embedding_sizes_the_network_builds() -> None:
    """A size the network refuses is a usage error when the settings are read, not a failed run."""

    def accepted(build: Callable[..., object], **settings: int) -> bool:
        try:
            build(**settings)
        except ValueError:  # pydantic's ValidationError is one
            return False
        return True

    network = partial(DenoiserConfig, 220, 10)
    for size in range(0, 40):
        assert accepted(DiffusionSettings, time_embed=size) == accepted(network, time_embed=size), size
