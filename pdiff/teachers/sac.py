"""Task-conditioned soft actor-critic: the networks and the update rule.

SAC with twin critics, target networks and automatic entropy tuning (Haarnoja et al. 2018). The teacher's
input is the family observation followed by the task condition (`TaskFamily.task_condition`), so one network
serves every task of a family. Actions are squashed into [-1, 1] with tanh, which is the action box of every
MuJoCo family.

The teacher is only a data source for `collect`: it trains on all tasks of its family, test tasks included,
because the expert and medium datasets of the test tasks must exist too. No downstream model ever sees it.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

# Bounds of the actor's log standard deviation (tanh-rescaled, so gradients never vanish at a hard clip).
LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


class SACConfig(BaseModel):
    """Everything that decides a teacher's training run (with the seed). Saved next to every checkpoint."""

    model_config = ConfigDict(extra="forbid")

    total_updates: int = Field(150_000, ge=1, description="Gradient updates in the whole run (cost driver).")
    num_envs: int = Field(
        8, ge=1, description="Environments stepped together; each episode draws a random task."
    )
    batch_size: int = Field(256, ge=1, description="Transitions per gradient update.")
    hidden_sizes: tuple[int, ...] = Field((256, 256), min_length=1, description="Hidden widths of every MLP.")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of actor, critics and entropy coefficient.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    tau: float = Field(0.005, gt=0, le=1, description="Polyak rate of the target critics.")
    autotune_entropy: bool = Field(
        True, description="Learn the entropy coefficient alpha (else keep `alpha`)."
    )
    alpha: float = Field(0.2, gt=0, description="Initial (autotuned) or fixed entropy coefficient.")
    target_entropy_scale: float = Field(
        1.0, description="Target entropy = -scale * action dims (only when autotuning)."
    )
    buffer_size: int = Field(1_000_000, ge=1, description="Replay buffer capacity in transitions.")
    learning_starts: int = Field(
        5_000, ge=0, description="Environment steps of uniform random actions before the first update."
    )
    updates_per_env_step: float = Field(
        1.0, gt=0, description="Update-to-data ratio: gradient updates per collected transition."
    )
    snapshot_every: int = Field(
        5_000, ge=1, description="Keep an evaluated actor snapshot every this many updates (medium data)."
    )
    checkpoint_every: int = Field(
        10_000, ge=1, description="Write a resumable checkpoint every this many updates."
    )
    keep_checkpoints: int = Field(
        2, ge=1, description="Resumable checkpoints kept on disk (the newest ones)."
    )
    eval_every: int = Field(
        5_000, ge=1, description="Evaluate the deterministic actor every this many updates."
    )
    eval_episodes: int = Field(
        2, ge=1, description="Evaluation episodes per task (every task of the family)."
    )
    log_every: int = Field(
        1_000, ge=1, description="Append mean losses and alpha to metrics.jsonl this often."
    )
    threads: int = Field(
        1, ge=1, description="torch intra-op threads (1 is fastest on a shared 2-core machine)."
    )


def mlp(input_dim: int, hidden_sizes: tuple[int, ...], output_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = input_dim
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy: input = observation ‖ task condition."""

    def __init__(self, input_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = mlp(input_dim, hidden_sizes[:-1], hidden_sizes[-1])
        self.mean = nn.Linear(hidden_sizes[-1], act_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], act_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = F.relu(self.trunk(x))
        log_std = torch.tanh(self.log_std(features))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return self.mean(features), log_std

    def deterministic(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.forward(x)[0])

    def sample(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action and its log-probability; `noise` ~ N(0, 1) is drawn here if not given."""
        mean, log_std = self.forward(x)
        if noise is None:
            noise = torch.randn_like(mean)
        pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh)
        gaussian_log_prob = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        # Change of variables through tanh, in the numerically stable form 2·(log 2 − u − softplus(−2u)).
        squash_correction = 2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))
        return action, (gaussian_log_prob - squash_correction).sum(-1)


class TwinCritic(nn.Module):
    """Two independent Q networks; the minimum of the pair fights over-estimation."""

    def __init__(self, input_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.q1 = mlp(input_dim + act_dim, hidden_sizes, 1)
        self.q2 = mlp(input_dim + act_dim, hidden_sizes, 1)

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa = torch.cat([x, action], dim=-1)
        return self.q1(xa).squeeze(-1), self.q2(xa).squeeze(-1)


class SAC:
    """Actor, critics, targets, entropy coefficient and their optimisers; `update` is one gradient step."""

    def __init__(self, input_dim: int, act_dim: int, config: SACConfig) -> None:
        hidden = tuple(config.hidden_sizes)
        self.config = config
        self.actor = Actor(input_dim, act_dim, hidden)
        self.critic = TwinCritic(input_dim, act_dim, hidden)
        self.critic_target = TwinCritic(input_dim, act_dim, hidden)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.alpha), requires_grad=config.autotune_entropy)
        self.target_entropy = -config.target_entropy_scale * act_dim
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.lr, fused=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.lr, fused=True)

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def update(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> dict[str, float]:
        alpha = self.log_alpha.detach().exp()

        # Critics: soft Bellman target from the target critics; a time-limit truncation still bootstraps.
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(next_obs)
            target_q1, target_q2 = self.critic_target(next_obs, next_action)
            soft_value = torch.min(target_q1, target_q2) - alpha * next_log_prob
            q_target = reward + self.config.gamma * (1.0 - terminated) * soft_value
        q1, q2 = self.critic(obs, action)
        critic_loss = F.mse_loss(q1, q_target) + F.mse_loss(q2, q_target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        # Actor: maximise min-Q plus entropy. The critics are frozen so no weight gradients are computed.
        self.critic.requires_grad_(False)
        new_action, log_prob = self.actor.sample(obs)
        q1_pi, q2_pi = self.critic(obs, new_action)
        actor_loss = (alpha * log_prob - torch.min(q1_pi, q2_pi)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self.critic.requires_grad_(True)

        # Entropy coefficient: move alpha so the policy's entropy tracks the target.
        alpha_loss = torch.zeros(())
        if self.config.autotune_entropy:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()

        with torch.no_grad():
            for target, online in zip(self.critic_target.parameters(), self.critic.parameters(), strict=True):
                target.lerp_(online, self.config.tau)

        return {
            "critic_loss": float(critic_loss.detach()),
            "actor_loss": float(actor_loss.detach()),
            "alpha_loss": float(alpha_loss.detach()),
            "q_mean": float(q1.detach().mean()),
            "entropy": float(-log_prob.detach().mean()),
        }

    def train_state(self) -> dict[str, object]:
        """Everything but the actor's weights needed to continue exactly (tensors and plain containers)."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
        }

    def load_train_state(self, state: dict[str, object]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
