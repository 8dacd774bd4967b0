"""Dropout whose CPU masks cost a quarter of the random draws: the Prompt-DT's dropout on embeddings,
attention weights and residuals.

CPU dropout draws one 32-bit number per element, which costs as much as a tenth of a Prompt-DT train step.
Here each 64-bit draw gives four 15-bit uniform lanes; an element is dropped when its lane is below
round(p·2^15) (p = 0.1 -> 0.10001). Other devices use the stock kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Dropout(nn.Dropout):
    """nn.Dropout whose CPU masks cost a quarter of the random draws (`cpu_dropout`)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not 0.0 < self.p < 1.0 or x.device.type != "cpu":
            return super().forward(x)
        return cpu_dropout(x, self.p)


def cpu_dropout(x: Tensor, p: float) -> Tensor:
    """x with elements zeroed at rate p and the rest scaled by 1/(1 - p), four mask lanes per 64-bit draw."""
    n = x.numel()
    lanes = torch.empty((n + 3) // 4, dtype=torch.int64).random_().view(torch.int16)[:n].view(x.shape)
    threshold = round(p * 32768)
    return x * ((lanes & 0x7FFF) >= threshold).to(x.dtype).mul_(32768 / (32768 - threshold))
