"""The Prompt-DT's CPU dropout: its rate, its mean and independent mask lanes."""

from __future__ import annotations

import pytest
import torch

from pdiff.models.dropout import Dropout


def test_dropout_drops_a_tenth_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    dropout = Dropout(0.1).train()
    x = torch.ones(400, 1000)
    y = dropout(x)
    assert (y == 0).float().mean().item() == pytest.approx(0.1, abs=0.003)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.equal(dropout.eval()(x), x)
    # Consecutive lanes of one draw must be independent: pairs dropped together at rate p^2.
    pairs = (y.view(-1, 2) == 0).all(dim=1).float().mean().item()
    assert pairs == pytest.approx(0.01, abs=0.002)
