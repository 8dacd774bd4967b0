"""Checkpoint files: save/load round trips, damaged files, wrong dimensions, resume state."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from prompt_dt_cases import FAMILY_DIMS, build_prompt_dt, example_inputs, model_config_for
from support.model_suite import assert_save_load_identical

from pdiff.errors import ArtifactError
from pdiff.models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    capture_rng,
    load_inference,
    load_train_state,
    restore_rng,
    save_inference,
    save_train_state,
)
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig, action_loss


def trained_model(state_dim: int, act_dim: int, **overrides: object) -> PromptDT:
    torch.manual_seed(state_dim)
    model = PromptDT(PromptDTConfig(state_dim, act_dim, **overrides))
    with torch.no_grad():  # move away from the init, so a load that silently failed would show
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model


def saved_checkpoint(tmp_path: Path, state_dim: int = 20, act_dim: int = 6) -> Path:
    model = trained_model(state_dim, act_dim)
    directory = tmp_path / f"ckpt-{state_dim}"
    save_inference(directory, model, model_config_for(model.config))
    return directory


@pytest.mark.parametrize("dims", FAMILY_DIMS)
def test_save_load_gives_identical_outputs(dims: tuple[int, int], tmp_path: Path) -> None:
    model = trained_model(*dims)
    assert_save_load_identical(
        model,
        build_prompt_dt,
        example_inputs(model.config),
        tmp_path,
        model_config=model_config_for(model.config),
    )


def test_metadata_must_be_strings(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="str"):
        save_inference(tmp_path, trained_model(20, 6), {}, metadata={"step": 5})  # type: ignore[dict-item]


# ---- damaged or missing files ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_weights_file_is_an_artifact_error(damage: str, tmp_path: Path) -> None:
    directory = saved_checkpoint(tmp_path)
    weights = directory / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00not safetensors" * 64, "empty": b""}[damage]
    )
    with pytest.raises(ArtifactError, match="corrupt or truncated") as info:
        load_inference(directory, build_prompt_dt)
    assert WEIGHTS_FILE in info.value.message and info.value.hint


@pytest.mark.parametrize("name", [WEIGHTS_FILE, CONFIG_FILE])
def test_missing_file_is_an_artifact_error(name: str, tmp_path: Path) -> None:
    directory = saved_checkpoint(tmp_path)
    (directory / name).unlink()
    with pytest.raises(ArtifactError, match="missing") as info:
        load_inference(directory, build_prompt_dt)
    assert name in info.value.message


def test_corrupt_config_is_an_artifact_error(tmp_path: Path) -> None:
    directory = saved_checkpoint(tmp_path)
    (directory / CONFIG_FILE).write_text('{"architecture": {"state_dim": 20,')
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_inference(directory, build_prompt_dt)
    (directory / CONFIG_FILE).write_text('{"architecture": {"state_dim": 20, "act_dim": 6, "n_layers": 9}}')
    with pytest.raises(ArtifactError, match="cannot build|can build"):
        load_inference(directory, build_prompt_dt)


def test_checkpoint_from_another_family_is_refused_by_name(tmp_path: Path) -> None:
    directory = saved_checkpoint(tmp_path, 20, 6)
    with pytest.raises(ArtifactError) as info:
        load_inference(
            directory,
            build_prompt_dt,
            expect={"architecture.state_dim": 39, "architecture.act_dim": 4},
            expect_from="family metaworld-reach",
        )
    assert "checkpoint has state_dim 20, family metaworld-reach needs 39" in info.value.message
    # The matching expectation loads.
    model, _ = load_inference(directory, build_prompt_dt, expect={"architecture.state_dim": 20})
    assert model.config.state_dim == 20


def test_weights_that_do_not_fit_the_built_model_are_refused(tmp_path: Path) -> None:
    directory = saved_checkpoint(tmp_path, 20, 6)

    def build_for_metaworld(model_config: dict) -> PromptDT:  # a caller that ignores the stored dims
        return PromptDT(PromptDTConfig(39, 4))

    with pytest.raises(ArtifactError, match=r"has shape \(128, 20\).*needs \(128, 39\)"):
        load_inference(directory, build_for_metaworld)


# ---- resume state ------------------------------------------------------------------------------------------


def _train_steps(model: PromptDT, optimizer, scheduler, rng: np.random.Generator, steps: int) -> None:
    for _ in range(steps):
        seed = int(rng.integers(1 << 30))  # batches come from the numpy generator, dropout from torch
        inputs = example_inputs(model.config, batch=2, seed=seed)
        loss = action_loss(model(**inputs), inputs["actions"], inputs["attention_mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        scheduler.step()


def _make_training(model: PromptDT):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min((step + 1) / 10, 1.0))
    return optimizer, scheduler


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    small = {"embed_dim": 32, "n_layer": 2, "context_len": 6, "max_ep_len": 100, "prompt_len": 3}
    random.seed(0)
    rng = np.random.default_rng(0)
    model = trained_model(20, 6, **small).train()
    optimizer, scheduler = _make_training(model)
    _train_steps(model, optimizer, scheduler, rng, 3)

    save_inference(tmp_path / "ckpt", model, model_config_for(model.config))
    state = {
        "step": 3,
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "rng": capture_rng(rng),
    }
    save_train_state(tmp_path / "ckpt" / "train_state.pt", state)

    _train_steps(model, optimizer, scheduler, rng, 3)
    straight = {k: v.clone() for k, v in model.state_dict().items()}
    next_numbers = (random.random(), rng.random(), torch.rand(3))

    # A fresh process: different global RNG states, a new generator, everything rebuilt from files.
    random.seed(123)
    torch.manual_seed(123)
    rng2 = np.random.default_rng(999)
    resumed, _ = load_inference(tmp_path / "ckpt", build_prompt_dt)
    resumed.train()
    optimizer2, scheduler2 = _make_training(resumed)
    loaded = load_train_state(tmp_path / "ckpt" / "train_state.pt")
    optimizer2.load_state_dict(loaded["optimizer"])
    scheduler2.load_state_dict(loaded["lr_scheduler"])
    restore_rng(loaded["rng"], rng2)
    assert loaded["step"] == 3
    _train_steps(resumed, optimizer2, scheduler2, rng2, 3)

    for name, tensor in resumed.state_dict().items():
        assert torch.equal(tensor, straight[name]), name
    assert (random.random(), rng2.random()) == next_numbers[:2]
    assert torch.equal(torch.rand(3), next_numbers[2])


def test_train_state_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "train_state.pt"
    save_train_state(path, {"step": 1, "rng": capture_rng(np.random.default_rng(0))})
    assert torch.load(path, weights_only=True)["step"] == 1

    # A file that needs arbitrary unpickling is refused, not executed.
    buffer = io.BytesIO()
    torch.save({"step": 1, "config": Path("/etc")}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ArtifactError, match="more than plain data"):
        load_train_state(path)


def test_damaged_or_missing_train_state_is_an_artifact_error(tmp_path: Path) -> None:
    path = tmp_path / "train_state.pt"
    with pytest.raises(ArtifactError, match="missing"):
        load_train_state(path)
    save_train_state(path, {"step": 1, "weights": torch.randn(1000)})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ArtifactError, match=str(path.name)):
        load_train_state(path)


def test_restore_rng_needs_the_generator_it_captured() -> None:
    state = capture_rng(np.random.default_rng(0))
    with pytest.raises(ValueError, match="generator"):
        restore_rng(state)
