"""Parts of the methods on their own: fresh adapters/LoRA/soft prompts start as the frozen model; PTDT's
rank-based update improves its score (online PTDT: test_ptdt_online.py)."""

from __future__ import annotations

import pytest
import torch
from method_suite import ptdt_context

from pdiff.methods import adaptor, lora, ptdt, soft_prompt
from pdiff.methods.finetuning import tunable_copy
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig


def _example(config: PromptDTConfig) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "states": torch.randn(2, config.context_len, config.state_dim, generator=g),
        "actions": torch.rand(2, config.context_len, config.act_dim, generator=g) * 2 - 1,
        "returns_to_go": torch.randn(2, config.context_len, 1, generator=g),
        "timesteps": torch.arange(config.context_len).repeat(2, 1),
    }


@pytest.mark.parametrize(
    ("module", "options"),
    [
        (adaptor, {"width": 3}),
        (lora, {"rank": 2, "alpha": 2.0, "targets": ["attn.qkv", "mlp.fc", "mlp.proj"]}),
    ],
)
def test_fresh_adapters_and_lora_compute_the_frozen_model(module, options):
    torch.manual_seed(0)
    frozen = PromptDT(PromptDTConfig(state_dim=5, act_dim=2, embed_dim=16, n_layer=2, context_len=4)).eval()
    tuned = tunable_copy(frozen, module.attach, options).eval()
    inputs = _example(frozen.config)
    embeddings = torch.randn(1, 3 * frozen.config.prompt_len, 16)
    with torch.no_grad():
        expected = frozen(**inputs, prompt_embeddings=embeddings)
        assert torch.allclose(tuned(**inputs, prompt_embeddings=embeddings), expected, atol=1e-6)
        # and any non-zero update changes the output (the wrapped modules are really used)
        for parameter in (p for p in tuned.parameters() if p.requires_grad):
            parameter.add_(0.1 * torch.randn_like(parameter))  # random: LayerNorm cancels uniform shifts
        assert not torch.allclose(tuned(**inputs, prompt_embeddings=embeddings), expected, atol=1e-3)


def test_soft_prompt_replaces_the_prompt_embedding():
    frozen = PromptDT(PromptDTConfig(state_dim=5, act_dim=2, embed_dim=16, n_layer=1, context_len=4)).eval()
    tuned = tunable_copy(frozen, soft_prompt.attach, {}).eval()
    assert [n for n, p in tuned.named_parameters() if p.requires_grad] == ["prompt_embed.embeddings"]
    embeddings = torch.randn(1, 3 * frozen.config.prompt_len, 16)
    with torch.no_grad():
        tuned.prompt_embed.embeddings.copy_(embeddings)
        inputs = _example(frozen.config)
        any_prompt = torch.zeros(1, frozen.config.prompt_len, 5)
        from pdiff.models.prompt_dt import Prompt

        prompt = Prompt(
            any_prompt,
            torch.zeros(1, 5, 2),
            torch.zeros(1, 5, 1),
            torch.zeros(1, 5, dtype=torch.long),
            torch.ones(1, 5),
        )
        assert torch.equal(tuned(**inputs, prompt=prompt), frozen(**inputs, prompt_embeddings=embeddings))


@pytest.mark.metaworld
def test_ptdt_offline_lowers_the_action_error_with_a_usable_step(trained):
    ws, pretrain, _ = trained
    # η = 1e-4 (the reference default) barely moves a normalised prompt; a larger step shows the estimator
    # works
    context = ptdt_context(
        ws, pretrain, steps=8, lr=0.05, batch_size=16, selection="off", ptdt={"lr_decay": 1.0, "sigma": 0.3}
    )
    result = ptdt.tune_task(context)
    assert result.metrics["fewshot_loss_after"] < result.metrics["fewshot_loss_before"], result.metrics
    assert result.metrics["prompt_moved_rms"] > 0.01
