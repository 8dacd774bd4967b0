"""Prompt-DT train-step benchmark: pdiff's PromptDT vs the same model built on transformers.GPT2Model.

One train step = sample a batch (batch-per-task segments of every task, vectorised numpy indexing from a
synthetic contiguous dataset, each segment with the tail of a random prompt episode of its task) + forward +
masked action MSE + backward + grad clip 0.25 + AdamW + warm-up schedule. Both models get the same batches,
the same optimiser code and the same thread count; steps alternate between the two so machine noise cancels
in the ratio. pdiff computes each distinct prompt of a batch once (Prompt.rows); the baseline, like the
reference, gets one prompt copy per row.

The baseline is the reference Prompt-DT wrapper (mxu34/prompt-dt) on `transformers.GPT2Model`, with the
positional embeddings zeroed and frozen (the reference's GPT-2 copy has none) and only the action head
computed (the reference also computes two unused heads; leaving them out only helps the baseline).

Usage: python bench/bench_train_step.py [--tasks 4] [--batch-per-task 16] [--threads 1] [--hf-attn sdpa|eager]
                                        [--adamw fused|default] [--state-dim 39 --act-dim 4] [--steps 60]
Needs the `bench` extra (transformers).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from pdiff.models.prompt_dt import Prompt, PromptDT, PromptDTConfig, action_loss

RTG_SCALE = 500.0
PAD_ACTION = -10.0  # the reference pads training actions with -10


# ---- synthetic data and vectorised batch sampling ----------------------------------------------------------


@dataclass
class SyntheticData:
    states: np.ndarray  # (N, ds) normalised, all episodes of all tasks back to back
    actions: np.ndarray  # (N, da)
    rtg: np.ndarray  # (N, 1) undiscounted suffix return / scale
    timesteps: np.ndarray  # (N,)
    pad_state: np.ndarray  # (ds,) a zero raw state, normalised (the reference pads before normalising)
    episode_start: np.ndarray  # (E,) training episodes, grouped by task
    episode_len: np.ndarray  # (E,)
    length_cum: np.ndarray  # (E,) cumulative episode lengths, for length-weighted sampling
    task_length_base: np.ndarray  # (tasks,) cumulative length before each task's episodes
    task_length_total: np.ndarray  # (tasks,)
    prompt_rows: np.ndarray  # (P, H) dataset rows of each prompt tail segment, -1 = padding
    task_prompt_base: np.ndarray  # (tasks,) first prompt segment of each task
    task_prompt_count: np.ndarray  # (tasks,)


def make_dataset(
    rng: np.random.Generator,
    tasks: int,
    episodes: int,
    horizon: int,
    state_dim: int,
    act_dim: int,
    prompt_len: int,
) -> SyntheticData:
    prompt_episodes = 5
    lengths = rng.integers(horizon // 2, horizon + 1, size=(tasks, episodes + prompt_episodes))
    lengths[:, -1] = 3  # one short prompt episode per task exercises prompt padding
    total = int(lengths.sum())
    raw = rng.normal(size=(total, state_dim)).astype(np.float32)
    mean, std = raw.mean(0), raw.std(0) + 1e-6
    rewards = rng.normal(size=total).astype(np.float32)
    starts = np.concatenate(([0], np.cumsum(lengths.ravel())[:-1])).reshape(lengths.shape)
    rtg = np.empty(total, np.float32)
    timesteps = np.empty(total, np.int64)
    for start, length in zip(starts.ravel(), lengths.ravel(), strict=True):
        rtg[start : start + length] = np.cumsum(rewards[start : start + length][::-1])[::-1] / RTG_SCALE
        timesteps[start : start + length] = np.arange(length)
    train_start, train_len = starts[:, :episodes].ravel(), lengths[:, :episodes].ravel()
    task_total = lengths[:, :episodes].sum(1)
    # Prompt = the tail of a prompt episode: steps T-6 .. T-2 (reference get_prompt), left-padded if short.
    p_start, p_len = starts[:, episodes:].ravel(), lengths[:, episodes:].ravel()
    first = np.maximum(0, p_len - prompt_len - 1)
    real = np.minimum(prompt_len, p_len - first)
    offs = np.arange(prompt_len)[None] - (prompt_len - real)[:, None]
    prompt_rows = np.where(offs >= 0, (p_start + first)[:, None] + offs, -1)
    return SyntheticData(
        states=(raw - mean) / std,
        actions=rng.uniform(-1, 1, size=(total, act_dim)).astype(np.float32),
        rtg=rtg[:, None],
        timesteps=timesteps,
        pad_state=(-mean / std).astype(np.float32),
        episode_start=train_start,
        episode_len=train_len,
        length_cum=np.cumsum(train_len),
        task_length_base=np.concatenate(([0], np.cumsum(task_total)[:-1])),
        task_length_total=task_total,
        prompt_rows=prompt_rows,
        task_prompt_base=np.arange(tasks) * prompt_episodes,
        task_prompt_count=np.full(tasks, prompt_episodes),
    )


def _gather(data: SyntheticData, rows: np.ndarray, real: np.ndarray) -> dict[str, np.ndarray]:
    safe = np.where(real, rows, 0)
    states, actions = data.states[safe], data.actions[safe]
    rtg, timesteps = data.rtg[safe], data.timesteps[safe]
    states[~real] = data.pad_state
    actions[~real] = PAD_ACTION
    rtg[~real] = 0.0
    timesteps[~real] = 0
    return {"states": states, "actions": actions, "rtg": rtg, "timesteps": timesteps, "mask": real}


def sample_batch(data: SyntheticData, rng: np.random.Generator, batch_per_task: int, context: int) -> dict:
    """batch_per_task length-weighted K-step segments of every task, each with a fresh prompt of its task."""
    tasks = len(data.task_length_total)
    task = np.repeat(np.arange(tasks), batch_per_task)
    target = data.task_length_base[task] + rng.random(task.size) * data.task_length_total[task]
    episode = np.searchsorted(data.length_cum, target, side="right")
    length = data.episode_len[episode]
    first = (rng.random(task.size) * length).astype(np.int64)
    real_steps = np.minimum(context, length - first)
    offs = np.arange(context)[None] - (context - real_steps)[:, None]  # left padding
    main = _gather(data, (data.episode_start[episode] + first)[:, None] + offs, offs >= 0)
    segment = data.task_prompt_base[task] + (rng.random(task.size) * data.task_prompt_count[task]).astype(
        np.int64
    )
    # Rows drawing the same prompt segment share one copy of it (Prompt.rows).
    distinct, prompt_of_row = np.unique(segment, return_inverse=True)
    rows = data.prompt_rows[distinct]
    prompt = _gather(data, rows, rows >= 0)
    batch = {k: torch.from_numpy(v) for k, v in main.items()}
    batch["mask"] = batch["mask"].float()
    batch["prompt"] = Prompt(
        torch.from_numpy(prompt["states"]),
        torch.from_numpy(prompt["actions"]),
        torch.from_numpy(prompt["rtg"]),
        torch.from_numpy(prompt["timesteps"]),
        torch.from_numpy(prompt["mask"]).float(),
        torch.from_numpy(prompt_of_row),
    )
    return batch


# ---- the reference wrapper on transformers.GPT2Model -------------------------------------------------------


class _Embeddings(nn.Module):
    def __init__(self, state_dim: int, act_dim: int, embed_dim: int, max_ep_len: int) -> None:
        super().__init__()
        self.timestep = nn.Embedding(max_ep_len, embed_dim)
        self.ret = nn.Linear(1, embed_dim)
        self.state = nn.Linear(state_dim, embed_dim)
        self.action = nn.Linear(act_dim, embed_dim)

    def forward(self, states: Tensor, actions: Tensor, rtg: Tensor, timesteps: Tensor) -> Tensor:
        time = self.timestep(timesteps)
        stacked = torch.stack(
            (self.ret(rtg) + time, self.state(states) + time, self.action(actions) + time), dim=1
        )
        batch, steps = states.shape[:2]
        return stacked.permute(0, 2, 1, 3).reshape(batch, 3 * steps, time.shape[-1])


class ReferencePromptDT(nn.Module):
    """The reference Prompt-DT forward, on transformers.GPT2Model (bench and oracle test only)."""

    def __init__(self, config: PromptDTConfig, attn_implementation: str = "sdpa") -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        gpt_config = GPT2Config(
            vocab_size=1,
            n_embd=config.embed_dim,
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_inner=4 * config.embed_dim,
            activation_function="relu",
            resid_pdrop=config.dropout,
            attn_pdrop=config.dropout,
            embd_pdrop=config.dropout,
            use_cache=False,
            bos_token_id=None,
            eos_token_id=None,
            attn_implementation=attn_implementation,
        )
        self.transformer = GPT2Model(gpt_config)
        with torch.no_grad():
            self.transformer.wpe.weight.zero_()
        self.transformer.wpe.weight.requires_grad_(False)
        self.embed = _Embeddings(config.state_dim, config.act_dim, config.embed_dim, config.max_ep_len)
        self.prompt_embed = _Embeddings(config.state_dim, config.act_dim, config.embed_dim, config.max_ep_len)
        self.embed_ln = nn.LayerNorm(config.embed_dim)
        self.predict_action = nn.Sequential(nn.Linear(config.embed_dim, config.act_dim), nn.Tanh())

    def forward(
        self,
        states: Tensor,
        actions: Tensor,
        rtg: Tensor,
        timesteps: Tensor,
        attention_mask: Tensor,
        prompt: Prompt,
    ) -> Tensor:
        batch, steps = states.shape[:2]
        main = self.embed_ln(self.embed(states, actions, rtg, timesteps))
        main_mask = attention_mask.repeat_interleave(3, dim=1)
        # The reference gives every row its own copy of its prompt.
        rows = prompt.rows
        if rows is None:
            rows = (
                torch.arange(batch) if len(prompt.states) == batch else torch.zeros(batch, dtype=torch.long)
            )
        states_p, actions_p, rtg_p, time_p = (
            t[rows] for t in (prompt.states, prompt.actions, prompt.returns_to_go, prompt.timesteps)
        )
        tokens = self.prompt_embed(states_p, actions_p, rtg_p, time_p)
        inputs = torch.cat((tokens, main), dim=1)
        mask = torch.cat((prompt.mask[rows].repeat_interleave(3, dim=1), main_mask), dim=1).long()
        x = self.transformer(inputs_embeds=inputs, attention_mask=mask, use_cache=False).last_hidden_state
        x = x.reshape(batch, -1, 3, x.shape[-1]).permute(0, 2, 1, 3)
        return self.predict_action(x[:, 1])[:, -steps:]

    @torch.no_grad()
    def load_from(self, ours: PromptDT) -> None:
        """Copy a PromptDT's weights (GPT-2 Conv1D weights are stored transposed)."""
        gpt = self.transformer
        for block, ref in zip(ours.blocks, gpt.h, strict=True):
            pairs = [(block.ln1, ref.ln_1), (block.ln2, ref.ln_2)]
            pairs += [(block.attn.qkv, ref.attn.c_attn), (block.attn.proj, ref.attn.c_proj)]
            pairs += [(block.mlp.fc, ref.mlp.c_fc), (block.mlp.proj, ref.mlp.c_proj)]
            for src, dst in pairs:
                transpose = isinstance(src, nn.Linear)
                dst.weight.copy_(src.weight.T if transpose else src.weight)
                dst.bias.copy_(src.bias)
        gpt.ln_f.load_state_dict(ours.ln_f.state_dict())
        self.embed.load_state_dict(ours.embed.state_dict())
        self.prompt_embed.load_state_dict(ours.prompt_embed.state_dict())
        self.embed_ln.load_state_dict(ours.embed_ln.state_dict())
        self.predict_action[0].load_state_dict(ours.action_head.state_dict())


# ---- timing ------------------------------------------------------------------------------------------------


class Trainer:
    """Prompt-DT's optimisation: AdamW lr 1e-4 wd 1e-4, linear warm-up, global grad-norm clip 0.25."""

    def __init__(self, model: nn.Module, fused: bool) -> None:
        self.model = model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4, fused=fused or None)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min((step + 1) / 10_000, 1)
        )
        self.params = params

    def step(self, batch: dict) -> float:
        pred = self.model(
            batch["states"],
            batch["actions"],
            batch["rtg"],
            batch["timesteps"],
            batch["mask"],
            batch["prompt"],
        )
        loss = action_loss(pred, batch["actions"], batch["mask"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 0.25)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()


def timed_step(
    trainer: Trainer, data: SyntheticData, rng: np.random.Generator, args: argparse.Namespace
) -> float:
    start = time.perf_counter()
    trainer.step(sample_batch(data, rng, args.batch_per_task, args.context))
    return time.perf_counter() - start


def main() -> None:
    from common import Figure, machine_line, table, write_json  # bench/ is on the path when run as a script

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--batch-per-task", type=int, default=16)
    parser.add_argument("--state-dim", type=int, default=39)
    parser.add_argument("--act-dim", type=int, default=4)
    parser.add_argument("--context", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60, help="timed train steps per model")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or None)
    parser.add_argument(
        "--hf-attn", default="sdpa", choices=["sdpa", "eager"], help="baseline attention kernel"
    )
    parser.add_argument(
        "--adamw", default="fused", choices=["fused", "default"], help="AdamW kernel (both models)"
    )
    parser.add_argument("--json", help="also write the figure to this file (for bench/run_all.py)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = PromptDTConfig(args.state_dim, args.act_dim, context_len=args.context)
    data = make_dataset(np.random.default_rng(0), args.tasks, 50, 200, args.state_dim, args.act_dim, 5)
    trainers = {
        "pdiff": Trainer(PromptDT(config), args.adamw == "fused"),
        f"transformers-{args.hf_attn}": Trainer(
            ReferencePromptDT(config, args.hf_attn), args.adamw == "fused"
        ),
    }
    rngs = {name: np.random.default_rng(1) for name in trainers}  # same batch stream for both
    for name, trainer in trainers.items():  # warm-up
        for _ in range(3):
            trainer.step(sample_batch(data, rngs[name], args.batch_per_task, args.context))
    # Steps alternate between the models (who goes first alternates too), so a burst of load from other
    # processes hits both; the ratio of the summed times and the median of per-pair ratios are reported.
    names = list(trainers)
    seconds = dict.fromkeys(names, 0.0)
    pair_ratios = []
    for step in range(args.steps):
        order = names if step % 2 == 0 else names[::-1]
        took = {name: timed_step(trainers[name], data, rngs[name], args) for name in order}
        for name in names:
            seconds[name] += took[name]
        pair_ratios.append(took[names[1]] / took[names[0]])
    batch = args.tasks * args.batch_per_task
    print(machine_line())
    print(
        f"config: state {args.state_dim} / act {args.act_dim}, batch {batch} ({args.tasks} tasks x "
        f"{args.batch_per_task}), K {args.context} + prompt 5, {args.steps} steps each, "
        f"AdamW {args.adamw}"
    )
    for name in names:
        params = sum(p.numel() for p in trainers[name].params)
        print(f"{name:>20}: {args.steps / seconds[name]:7.2f} it/s  ({params:,} trained params)")
    quartiles = np.percentile(pair_ratios, [25, 50, 75])
    print(f"per-step pair ratios: median {quartiles[1]:.2f}, quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f}")
    figure = Figure(
        f"Prompt-DT train step, batch {batch}",
        args.steps / seconds[names[0]],
        "it/s",
        args.steps / seconds[names[1]],
        f"GPT2Model {args.hf_attn}",
        1.5,
    )
    print(table([figure]))
    write_json(args.json, [figure])


if __name__ == "__main__":
    main()
