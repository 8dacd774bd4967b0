"""Prompt Decision Transformer (Xu et al., 2022) in plain PyTorch.

Faithful to the reference model (docs/method.md): GPT-2 pre-LN blocks without positional
embeddings, ReLU MLP, dropout 0.1 on embeddings, attention and residuals, normal(0, 0.02) init inside the
transformer. Tokens are (R̂, s, a) per step with the step's timestep embedding added to each; the prompt has
its own embeddings and bypasses the input LayerNorm; the sequence is [prompt 3·H ‖ main 3·K]; a tanh head on
the state tokens predicts actions. Unused state/return heads of the reference are left out.

Exact shortcuts make it cheaper than the reference without changing what it computes:
- the prompt runs through the blocks on its own and the main sequence attends to its cached keys and values
  (prompt tokens come first, so under the causal mask they never see the main sequence). Rows that share a
  prompt (`Prompt.rows`) share that work in training, and evaluation encodes the prompt once
  (`encode_prompt`) instead of at every environment step;
- the last block computes attention outputs and the MLP only for the tokens that are read (state tokens),
  and the main sequence's last action token, which no state token sees, is left out;
- CPU dropout masks use a quarter of the random draws (`pdiff.models.dropout`), attention weights' too
  (~7% of a step).
With shared prompts, rows sharing a prompt also share its dropout masks (the reference draws them per row);
the expected loss and gradient are the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pdiff.models.dropout import Dropout, cpu_dropout
from pdiff.models.precision import Autocast, autocast_method

# Index into the (R̂, s, a) triple of each step.
_STATE_TOKEN = 1


@dataclass(frozen=True)
class PromptDTConfig:
    state_dim: int
    act_dim: int
    embed_dim: int = 128
    n_layer: int = 3
    n_head: int = 1
    context_len: int = 20
    prompt_len: int = 5
    max_ep_len: int = 1000
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PromptDTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown PromptDTConfig keys: {', '.join(unknown)}")
        return cls(**d)


@dataclass
class Prompt:
    """A batch of H-step prompts, already normalised (states) and scaled (returns-to-go).

    `rows` (B,) long says which prompt each batch row uses, so rows that share a prompt (training draws the
    tail of one of a few prompt episodes per task; evaluation uses one prompt per task) share its computation.
    Without `rows`, row i uses prompt i, and a batch-1 prompt serves every row.
    """

    states: Tensor  # (P, H, ds)
    actions: Tensor  # (P, H, da)
    returns_to_go: Tensor  # (P, H, 1)
    timesteps: Tensor  # (P, H) long
    mask: Tensor  # (P, H) 1 = real step, 0 = padding
    rows: Tensor | None = None  # (B,) long, values in [0, P)

    def to(self, device: torch.device | str) -> Prompt:
        # vars(), not dataclasses.astuple, which would deep-copy every tensor first
        return Prompt(*(None if t is None else t.to(device) for t in vars(self).values()))


@dataclass
class PromptCache:
    """Every layer's keys and values of encoded prompt tokens (see `PromptDT.encode_prompt`)."""

    keys: list[Tensor]  # per layer (P, n_head, 3H, head_dim)
    values: list[Tensor]
    token_mask: Tensor  # (P, 3H) bool, True = real token
    rows: Tensor | None = None  # as Prompt.rows


class CausalSelfAttention(nn.Module):
    def __init__(self, config: PromptDTConfig) -> None:
        super().__init__()
        if config.embed_dim % config.n_head:
            raise ValueError(f"embed_dim {config.embed_dim} is not divisible by n_head {config.n_head}")
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)
        self.resid_drop = Dropout(config.dropout)

    def project(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values (B, n_head, T, head_dim) of the normalised hidden states h (B, T, E)."""
        batch, length, width = h.shape
        qkv = self.qkv(h).view(batch, length, 3, self.n_head, width // self.n_head)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """Attention output (B, Tq, E) after the output projection; mask (B, 1, Tq, Tk) bool, True = may
        attend."""
        dropout = self.training and 0.0 < self.dropout < 1.0
        # On CPU two plain products beat SDPA's kernel with dropout (a draw per weight) and in bf16 (its flash
        # kernel).
        if q.device.type == "cpu" and (dropout or q.dtype == torch.bfloat16):
            scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
            weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1).to(v.dtype)
            out = (cpu_dropout(weights, self.dropout) if dropout else weights) @ v
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
        out = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
        return self.resid_drop(self.proj(out))


class MLP(nn.Module):
    def __init__(self, config: PromptDTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.embed_dim, 4 * config.embed_dim)
        self.proj = nn.Linear(4 * config.embed_dim, config.embed_dim)
        self.drop = Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        # On 2-D rows fc's output is a fresh tensor, not a view, so ReLU can work in place (a 3-D view would
        # make autograd copy it back).
        h = F.relu(self.fc(x.reshape(-1, x.shape[-1])), inplace=True)
        return self.drop(self.proj(h)).view(x.shape)


class Block(nn.Module):
    """Pre-LN GPT-2 block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: PromptDTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.embed_dim)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.embed_dim)
        self.mlp = MLP(config)

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        queries: slice | None = None,
        prefix: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """New hidden states of the `queries` positions of x (all if None), and x's keys and values.

        `prefix` holds keys and values of tokens placed before x (the prompt); `mask` is
        (B, 1, len(queries), len(prefix) + len(x)).
        """
        q, k, v = self.attn.project(self.ln1(x))
        if queries is not None:
            q, x = q[:, :, queries], x[:, queries]
        keys, values = (
            (k, v) if prefix is None else (torch.cat((prefix[0], k), 2), torch.cat((prefix[1], v), 2))
        )
        x = x + self.attn.attend(q, keys, values, mask)
        return x + self.mlp(self.ln2(x)), k, v


class _TokenEmbedding(nn.Module):
    """Timestep, return, state and action embeddings of one token stream (main or prompt)."""

    def __init__(self, config: PromptDTConfig) -> None:
        super().__init__()
        self.timestep = nn.Embedding(config.max_ep_len, config.embed_dim)
        self.ret = nn.Linear(1, config.embed_dim)
        self.state = nn.Linear(config.state_dim, config.embed_dim)
        self.action = nn.Linear(config.act_dim, config.embed_dim)

    def forward(self, states: Tensor, actions: Tensor, returns_to_go: Tensor, timesteps: Tensor) -> Tensor:
        time = self.timestep(timesteps)
        tokens = (self.ret(returns_to_go) + time, self.state(states) + time, self.action(actions) + time)
        batch, steps, width = time.shape
        # Stacking on dim 2 interleaves R̂_t, s_t, a_t without a permute copy.
        return torch.stack(tokens, dim=2).reshape(batch, 3 * steps, width)


def _token_mask(step_mask: Tensor) -> Tensor:
    """(B, T) step mask (non-zero = real) -> (B, 3T) bool token mask."""
    return (step_mask != 0).repeat_interleave(3, dim=1)


def _attention_mask(key_mask: Tensor, n_queries: int) -> Tensor:
    """(B, S) bool key mask -> (B, 1, n_queries, S) bool for queries at the last n_queries key positions.

    A query sees earlier and its own position, real keys only. It always sees itself, so a padded query has
    no empty row (SDPA would give NaN); padded outputs are never read by real tokens, so nothing else changes.
    """
    position = torch.arange(key_mask.shape[1], device=key_mask.device)
    query_at = position[-n_queries:, None]
    allowed = ((position <= query_at) & key_mask[:, None, :]) | (position == query_at)
    return allowed.unsqueeze(1)


def _rows(tensor: Tensor, rows: Tensor | None, batch: int) -> Tensor:
    """The prompt-side tensor for each of `batch` rows: gathered by `rows`, shared when batch-1, or as is."""
    if rows is not None:
        if rows.shape != (batch,):
            raise ValueError(f"prompt rows has shape {tuple(rows.shape)}, expected ({batch},)")
        return tensor.index_select(0, rows)
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(batch, *tensor.shape[1:])
    raise ValueError(f"prompt batch {tensor.shape[0]} does not match batch {batch}; pass prompt rows")


class PromptDT(Autocast, nn.Module):
    def __init__(self, config: PromptDTConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.embed_dim)
        # GPT-2 init inside the transformer only; embeddings and head keep PyTorch defaults (as the
        # reference).
        self.apply(_gpt2_init)
        self.embed = _TokenEmbedding(config)
        self.prompt_embed = _TokenEmbedding(config)
        self.embed_ln = nn.LayerNorm(config.embed_dim)
        self.embed_drop = Dropout(config.dropout)
        self.action_head = nn.Linear(config.embed_dim, config.act_dim)

    def embed_prompt(self, prompt: Prompt) -> Tensor:
        """Prompt token embeddings (P, 3H, E), differentiable in the prompt's states, actions and returns."""
        return self.prompt_embed(prompt.states, prompt.actions, prompt.returns_to_go, prompt.timesteps)

    def forward(
        self,
        states: Tensor,
        actions: Tensor,
        returns_to_go: Tensor,
        timesteps: Tensor,
        attention_mask: Tensor | None = None,
        prompt: Prompt | None = None,
        *,
        prompt_embeddings: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        prompt_rows: Tensor | None = None,
    ) -> Tensor:
        """Action predictions (B, K, da) at every step of the main sequence.

        The prompt is either `prompt` or token embeddings `prompt_embeddings` (P, 3H, E) with an optional
        step mask `prompt_mask` (P, H) and `prompt_rows` (as Prompt.rows).
        """
        cache = self._encode(prompt, prompt_embeddings, prompt_mask, prompt_rows)
        steps = states.shape[1]
        return self._predict(states, actions, returns_to_go, timesteps, attention_mask, cache, steps)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: Prompt | None = None,
        *,
        prompt_embeddings: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        prompt_rows: Tensor | None = None,
    ) -> PromptCache:
        """Run the prompt alone and keep every layer's keys and values, for `act`.

        Exact: prompt tokens come first, so under the causal mask they never see the main sequence.
        """
        cache = self._encode(prompt, prompt_embeddings, prompt_mask, prompt_rows)
        if cache is None:
            raise ValueError("encode_prompt needs a prompt or prompt_embeddings")
        return cache

    @torch.no_grad()
    def act(
        self,
        states: Tensor,
        actions: Tensor,
        returns_to_go: Tensor,
        timesteps: Tensor,
        attention_mask: Tensor | None = None,
        prompt: Prompt | PromptCache | None = None,
        *,
        prompt_embeddings: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        prompt_rows: Tensor | None = None,
    ) -> Tensor:
        """The last step's action (B, da) for each row; call in eval mode.

        Evaluation should pass a PromptCache from `encode_prompt` (once per evaluation, with `rows` mapping
        episodes to their task's prompt), so the prompt is not recomputed at every environment step.
        """
        cache = (
            prompt
            if isinstance(prompt, PromptCache)
            else self._encode(prompt, prompt_embeddings, prompt_mask, prompt_rows)
        )
        return self._predict(states, actions, returns_to_go, timesteps, attention_mask, cache, 1)[:, -1]

    @autocast_method
    def _encode(
        self, prompt: Prompt | None, embeddings: Tensor | None, step_mask: Tensor | None, rows: Tensor | None
    ) -> PromptCache | None:
        if prompt is not None and embeddings is not None:
            raise ValueError("give either prompt or prompt_embeddings, not both")
        if prompt is not None:
            embeddings, step_mask, rows = self.embed_prompt(prompt), prompt.mask, prompt.rows
        if embeddings is None:
            return None
        if step_mask is None:
            token_mask = torch.ones(embeddings.shape[:2], dtype=torch.bool, device=embeddings.device)
        else:
            token_mask = _token_mask(step_mask)
        x = self.embed_drop(embeddings)  # the prompt bypasses the input LayerNorm, as in the reference
        mask = _attention_mask(token_mask, token_mask.shape[1])
        keys, values = [], []
        for block in self.blocks[:-1]:
            x, k, v = block(x, mask)
            keys.append(k)
            values.append(v)
        # The last block's outputs for prompt tokens are never read: only its keys and values.
        _, k, v = self.blocks[-1].attn.project(self.blocks[-1].ln1(x))
        return PromptCache(keys + [k], values + [v], token_mask, rows)

    @autocast_method
    def _predict(
        self,
        states: Tensor,
        actions: Tensor,
        returns_to_go: Tensor,
        timesteps: Tensor,
        attention_mask: Tensor | None,
        cache: PromptCache | None,
        last_steps: int,
    ) -> Tensor:
        """Action predictions at the last `last_steps` steps of the main sequence, attending to the prompt."""
        batch, steps = states.shape[:2]
        # The last action token comes after every state token, so no prediction depends on it: leave it out.
        length = 3 * steps - 1
        x = self.embed_ln(self.embed(states, actions, returns_to_go, timesteps)[:, :length])
        if attention_mask is None:
            key_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            key_mask = _token_mask(attention_mask)[:, :length]
        if cache is not None:
            key_mask = torch.cat((_rows(cache.token_mask, cache.rows, batch), key_mask), dim=1)
        mask = _attention_mask(key_mask, length)
        x = self.embed_drop(x)
        # Only state tokens are read, so the last block computes just those (keys and values for all).
        read = slice(3 * (steps - last_steps) + _STATE_TOKEN, length, 3)
        for layer, block in enumerate(self.blocks):
            prefix = None
            if cache is not None:
                prefix = (
                    _rows(cache.keys[layer], cache.rows, batch),
                    _rows(cache.values[layer], cache.rows, batch),
                )
            if layer < len(self.blocks) - 1:
                x = block(x, mask, prefix=prefix)[0]
            else:
                x = block(x, mask[:, :, read], queries=read, prefix=prefix)[0]
        return torch.tanh(self.action_head(self.ln_f(x))).float()  # float32 out, whatever the precision


def _gpt2_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def action_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Prompt-DT's loss: mean squared action error over real (mask != 0) steps.

    pred/target (B, K, da), mask (B, K). Mean over real steps and action dimensions, as the reference's
    `torch.mean((a_hat - a)**2)` on the masked rows.
    """
    weight = (mask != 0).unsqueeze(-1).to(pred.dtype)
    # clamp: a batch with no real step gives 0, not NaN
    return ((pred - target) ** 2 * weight).sum() / (weight.sum() * pred.shape[-1]).clamp_min(1.0)
