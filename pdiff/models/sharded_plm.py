"""The frozen Prompt-DT split over torchrun's ranks by rows, for the denoiser's training: the Prompt-DT, the
expensive part of a step, scores only this rank's share of the contexts."""

from __future__ import annotations

from dataclasses import replace

import torch

from pdiff.distributed import DistInfo
from pdiff.models.prompt_dt import Prompt, PromptDT


class ShardedPLM(torch.nn.Module):
    """The frozen Prompt-DT computed on this rank's rows only, scaled so that the ranks' mean loss is the
    loss.

    Other rows return their target actions (zero error, no gradient); own rows return
    target + sqrt(W) * (prediction - target), so the masked MSE over all rows (whose count is global) is W
    times this rank's share, and the mean over W ranks is the single-process L_PLM.
    """

    def __init__(self, plm: PromptDT, info: DistInfo) -> None:
        super().__init__()
        self.plm, self.info = plm, info

    def forward(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
        mask: torch.Tensor,
        prompt: Prompt,
    ) -> torch.Tensor:
        rows = torch.arange(states.shape[0], device=states.device)[self.info.shard(states.shape[0])]
        prompt_rows = rows if prompt.rows is None else prompt.rows[rows]
        local = self.plm(
            states[rows],
            actions[rows],
            returns_to_go[rows],
            timesteps[rows],
            mask[rows],
            replace(prompt, rows=prompt_rows),
        )
        out = actions.detach().clone()
        out[rows] = actions[rows] + self.info.world_size**0.5 * (local - actions[rows])
        return out
