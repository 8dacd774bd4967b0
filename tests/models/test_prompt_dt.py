"""Prompt-DT: shapes, masking, prompt handling, gradients, faithfulness to the reference, and learning."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from prompt_dt_cases import FAMILY_DIMS, example_inputs, example_prompt, select_prompts, with_prompt

from pdiff.models.prompt_dt import PromptCache, PromptDT, PromptDTConfig, action_loss

REPO = Path(__file__).resolve().parents[2]


def make_model(state_dim: int = 20, act_dim: int = 6, seed: int = 0, **overrides: object) -> PromptDT:
    torch.manual_seed(seed)
    return PromptDT(PromptDTConfig(state_dim, act_dim, **overrides)).eval()


def real_steps(inputs: dict) -> torch.Tensor:
    return inputs["attention_mask"] != 0


# ---- configuration and size --------------------------------------------------------------------------------


def test_config_round_trip_and_unknown_keys() -> None:
    config = PromptDTConfig(39, 4, context_len=10)
    assert PromptDTConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="n_layers"):
        PromptDTConfig.from_dict({**config.to_dict(), "n_layers": 4})


@pytest.mark.parametrize(("dims", "count"), [((20, 6), 859_782), ((39, 4), 863_876)])
def test_parameter_count_matches_the_reference_size(dims: tuple[int, int], count: int) -> None:
    # The reference has about 0.86M (its two unused heads, 2.7K more, are left out here).
    model = make_model(*dims)
    assert sum(p.numel() for p in model.parameters()) == count
    blocks = sum(p.numel() for p in model.blocks.parameters()) + sum(
        p.numel() for p in model.ln_f.parameters()
    )
    assert blocks == 595_072


def test_adapter_hooks_are_named_linear_layers() -> None:
    block = make_model().blocks[0]
    for layer in (block.attn.qkv, block.attn.proj, block.mlp.fc, block.mlp.proj):
        assert type(layer) is torch.nn.Linear
    assert block.mlp.fc.out_features == 4 * 128


# ---- shapes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", FAMILY_DIMS)
def test_forward_and_act_shapes(dims: tuple[int, int]) -> None:
    model = make_model(*dims)
    inputs = example_inputs(model.config, batch=4)
    assert model(**inputs).shape == (4, 20, dims[1])
    assert model.act(**inputs).shape == (4, dims[1])
    no_prompt = {**inputs, "prompt": None}
    assert model(**no_prompt).shape == (4, 20, dims[1])
    shorter = {k: v[:, -7:] if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    assert model(**shorter).shape == (4, 7, dims[1])  # eval sees fewer than K steps early in an episode


def test_outputs_are_actions_in_range_and_finite_with_heavy_padding() -> None:
    model = make_model()
    inputs = example_inputs(model.config)
    inputs["attention_mask"][1, :-1] = 0  # only the last step real
    inputs["prompt"].mask[0] = 0  # a prompt that is all padding
    out = model(**inputs)
    assert torch.isfinite(out).all() and out.abs().max() < 1


# ---- masking -----------------------------------------------------------------------------------------------


def test_causal_mask_future_steps_do_not_change_earlier_predictions() -> None:
    model = make_model()
    inputs = example_inputs(model.config, pad=False)
    before = model(**inputs)
    step = 9
    changed = dict(inputs)
    changed["actions"] = inputs["actions"].clone()
    changed["actions"][:, step] += 1.0  # a_t comes after s_t: the prediction at t must not see it
    changed["states"] = inputs["states"].clone()
    changed["states"][:, step + 1 :] += 1.0
    after = model(**changed)
    assert torch.equal(before[:, : step + 1], after[:, : step + 1])
    assert not torch.allclose(before[:, step + 1 :], after[:, step + 1 :])


def test_padded_steps_do_not_change_the_output() -> None:
    model = make_model()
    inputs = example_inputs(model.config)  # row 0: 7 padded steps; last prompt: 2 padded steps
    before = model(**inputs)
    changed = dict(inputs)
    for key in ("states", "actions", "returns_to_go"):
        changed[key] = inputs[key].clone()
        changed[key][0, :7] = 123.0
    changed["timesteps"] = inputs["timesteps"].clone()
    changed["timesteps"][0, :7] = 5
    prompt = inputs["prompt"]
    states, actions = prompt.states.clone(), prompt.actions.clone()
    states[-1, :2], actions[-1, :2] = -50.0, -10.0
    after = model(**with_prompt(changed, states=states, actions=actions))
    real = real_steps(inputs)
    assert torch.allclose(before[real], after[real], atol=1e-6, rtol=0)
    # ...while the same change on real steps does change it.
    real_change = dict(inputs)
    real_change["states"] = inputs["states"].clone()
    real_change["states"][0, 7:9] = 123.0
    assert not torch.allclose(before[0, 9:], model(**real_change)[0, 9:])


# ---- the prompt --------------------------------------------------------------------------------------------


def test_the_prompt_changes_the_predictions() -> None:
    model = make_model()
    inputs = example_inputs(model.config)
    other = {**inputs, "prompt": example_prompt(model.config, 3, seed=99)}
    assert (model(**inputs) - model(**other)).abs().max() > 1e-3


def test_prompt_embeddings_path_matches_prompt_path() -> None:
    model = make_model()
    inputs = example_inputs(model.config)
    prompt = inputs.pop("prompt")
    direct = model(**inputs, prompt=prompt)
    embedded = model(**inputs, prompt_embeddings=model.embed_prompt(prompt), prompt_mask=prompt.mask)
    assert model.embed_prompt(prompt).shape == (3, 3 * model.config.prompt_len, model.config.embed_dim)
    assert torch.equal(direct, embedded)
    with pytest.raises(ValueError, match="not both"):
        model(**inputs, prompt=prompt, prompt_embeddings=model.embed_prompt(prompt))


def test_shared_prompt_rows_match_per_row_copies() -> None:
    model = make_model(39, 4)
    prompts = example_prompt(model.config, 2, seed=5)
    rows = torch.tensor([1, 0, 1, 1])
    inputs = example_inputs(model.config, batch=4, prompt=select_prompts(prompts, rows))
    shared = {**inputs, "prompt": replace(prompts, rows=rows)}
    assert torch.allclose(model(**inputs), model(**shared), atol=1e-6, rtol=0)
    # A batch-1 prompt serves every row.
    first = select_prompts(prompts, torch.tensor([0]))
    all_first = replace(prompts, rows=torch.zeros(4, dtype=torch.long))
    assert torch.allclose(
        model(**{**inputs, "prompt": first}), model(**{**inputs, "prompt": all_first}), atol=1e-6
    )
    with pytest.raises(ValueError, match="prompt rows"):
        model(**{**inputs, "prompt": prompts})  # 2 prompts for 4 rows and no rows


def test_act_and_prompt_cache_match_forward() -> None:
    model = make_model()
    inputs = example_inputs(model.config, batch=4)
    last = model(**inputs)[:, -1]
    assert torch.allclose(model.act(**inputs), last, atol=1e-6, rtol=0)
    cache = model.encode_prompt(inputs["prompt"])
    assert isinstance(cache, PromptCache) and len(cache.keys) == model.config.n_layer
    assert torch.allclose(model.act(**{**inputs, "prompt": cache}), last, atol=1e-6, rtol=0)
    assert not model.act(**inputs).requires_grad


def test_gradients_reach_the_prompt_through_a_frozen_model() -> None:
    model = make_model().train()
    model.requires_grad_(False)
    inputs = example_inputs(model.config)
    prompt = inputs["prompt"]
    prompt.states.requires_grad_(True)
    prompt.actions.requires_grad_(True)
    prompt.returns_to_go.requires_grad_(True)
    loss = action_loss(model(**inputs), inputs["actions"], inputs["attention_mask"])
    loss.backward()
    for tensor in (prompt.states, prompt.actions, prompt.returns_to_go):
        assert tensor.grad is not None and tensor.grad[:, -1].abs().sum() > 0
    assert prompt.states.grad[-1, :2].abs().sum() == 0  # padded prompt steps get no gradient
    assert all(p.grad is None for p in model.parameters())


# ---- loss, dropout, learning -------------------------------------------------------------------------------


def test_action_loss_ignores_padded_steps() -> None:
    pred = torch.zeros(2, 3, 2)
    target = torch.ones(2, 3, 2)
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    target[0, 0] = 100.0  # padded: must not count
    assert action_loss(pred, target, mask).item() == pytest.approx(1.0)
    assert action_loss(pred, target, torch.zeros(2, 3)).item() == 0.0


def test_training_mode_applies_dropout() -> None:
    model = make_model().train()
    inputs = example_inputs(model.config)
    assert not torch.equal(model(**inputs), model(**inputs))


def test_overfits_a_small_batch() -> None:
    model = make_model(39, 4, context_len=10).train()  # full width and depth, short context for speed
    inputs = example_inputs(model.config, batch=4, seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    target = inputs["actions"] * 0.9  # reachable through the tanh head
    losses = []
    for _ in range(50):
        loss = action_loss(model(**inputs), target, inputs["attention_mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])


# ---- faithfulness: the same function as the reference on transformers.GPT2Model ----------------------------


def test_matches_the_reference_gpt2_implementation() -> None:
    import transformers  # noqa: F401 - the oracle: in the dev extra (pdiff[test-oracles]), never skipped

    spec = importlib.util.spec_from_file_location("bench_train_step", REPO / "bench" / "bench_train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = make_model(39, 4)
    reference = bench.ReferencePromptDT(model.config).eval()
    reference.load_from(model)
    inputs = example_inputs(model.config, batch=4)
    ours = model(**inputs)
    theirs = reference(
        inputs["states"],
        inputs["actions"],
        inputs["returns_to_go"],
        inputs["timesteps"],
        inputs["attention_mask"],
        inputs["prompt"],
    )
    real = real_steps(inputs)
    assert torch.allclose(ours[real], theirs[real], atol=1e-5, rtol=0)
