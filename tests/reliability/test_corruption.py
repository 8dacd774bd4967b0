"""A flipped bit or a truncation in any artifact is caught by `pdiff verify` and by the stage that loads it,
with one line naming the file (and, from verify, the command that recreates it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_tools import FAMILY, flip_byte, one_line_error, truncate
from support.cli import in_workspace
from support.killing import checkpoint_at, kill_at

from pdiff.training.state import LATEST

pytestmark = pytest.mark.metaworld
TASK_0 = "datasets/pdiff/metaworld-reach/task-00"


def checkpoint_file(stage: str, name: str) -> Callable:
    def locate(p) -> Path:
        run_dir = p.ws.root / "runs" / stage / getattr(p, stage)
        return sorted((run_dir / "checkpoints").glob(f"0*/{name}"))[
            -1
        ]  # the final one, which later stages load

    return locate


# artifact -> (where it is, the command that loads it, the text its error line must contain)
ARTIFACTS = {
    "dataset-hdf5": (
        lambda p: p.ws.root / TASK_0 / "expert-v0/data/main_data.hdf5",
        lambda p: ["pretrain", "--env", FAMILY],
        "main_data.hdf5",
    ),
    "prompt-dataset-hdf5": (
        lambda p: p.ws.root / TASK_0 / "prompt-expert-v0/data/main_data.hdf5",
        lambda p: ["pretrain", "--env", FAMILY],
        "main_data.hdf5",
    ),
    "dataset-metadata": (
        lambda p: p.ws.root / TASK_0 / "expert-v0/data/metadata.json",
        lambda p: ["pretrain", "--env", FAMILY],
        "metadata.json",
    ),
    "checkpoint-safetensors": (
        checkpoint_file("pretrain", "model.safetensors"),
        lambda p: ["diffuse", "--pretrain", p.pretrain],
        "model.safetensors",
    ),
    "model-config": (
        checkpoint_file("pretrain", "model_config.json"),
        lambda p: ["diffuse", "--pretrain", p.pretrain],
        "model_config.json",
    ),
    "diffusion-checkpoint": (
        checkpoint_file("diffuse", "model.safetensors"),
        lambda p: ["tune", "--diffuse", p.diffuse],
        "model.safetensors",
    ),
    "run-json": (
        lambda p: p.ws.root / "runs" / "pretrain" / p.pretrain / "run.json",
        lambda p: ["diffuse", "--pretrain", p.pretrain],
        "run.json",
    ),
    "prompts-h5": (
        lambda p: p.ws.root / "runs" / "tune" / p.tune / "prompts.h5",
        lambda p: ["eval", "--tune", p.tune],
        "prompts.h5",
    ),
    "eval-results": (lambda p: p.ws.root / "runs" / "eval" / p.eval / "eval" / "results.json", None, None),
}
DAMAGE = {
    "flip-early": lambda path: flip_byte(path, 0.1),
    "flip-late": lambda path: flip_byte(path, 0.9),
    "truncate": truncate,
}


# every artifact once (the kind of damage rotating) in the default run, every combination under -m full_matrix
MATRIX = [
    pytest.param(
        artifact,
        damage,
        id=f"{artifact}-{damage}",
        marks=() if (a + d) % len(DAMAGE) == 0 else pytest.mark.full_matrix,
    )
    for a, artifact in enumerate(sorted(ARTIFACTS))
    for d, damage in enumerate(sorted(DAMAGE))
]


@pytest.mark.parametrize(("artifact", "damage"), MATRIX)
def test_corruption_is_caught(pipeline, artifact, damage):
    locate, loader, needle = ARTIFACTS[artifact]
    path = locate(pipeline)
    DAMAGE[damage](path)

    verified = in_workspace(pipeline.ws, "verify")
    assert verified.exit_code == 1, verified.output
    problems = [line for line in verified.stdout.splitlines() if line.startswith("MISMATCH")]
    assert problems and any(path.name in line and "pdiff " in line for line in problems), verified.stdout

    if loader is not None:
        loaded = in_workspace(pipeline.ws, *loader(pipeline), "--preset", "smoke")
        assert loaded.exit_code == 2, loaded.output
        assert needle in one_line_error(loaded.stderr)
        assert "hint:" in loaded.stderr


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("train_state.pt", "flip-late"),
        pytest.param("train_state.pt", "truncate", marks=pytest.mark.full_matrix),
        pytest.param("model.safetensors", "flip-late", marks=pytest.mark.full_matrix),
        pytest.param(LATEST, "truncate", marks=pytest.mark.full_matrix),
    ],
)
def test_corrupt_resume_state_is_refused(pipeline, name, damage):
    """The checkpoint a --resume would continue from (of a killed run) is checked before it is used."""
    kill = kill_at(
        pipeline.ws,
        "pretrain",
        ["--env", FAMILY, "--preset", "smoke", "--set", "steps=1000"],
        checkpoint_at(10),
    )
    checkpoints = pipeline.ws.root / "runs" / "pretrain" / kill.run_id / "checkpoints"
    path = checkpoints / name if name == LATEST else sorted(checkpoints.glob(f"0*/{name}"))[-1]
    DAMAGE[damage](path)
    resumed = in_workspace(pipeline.ws, "pretrain", "--resume", kill.run_id)
    assert resumed.exit_code == 2, resumed.output
    assert path.name in one_line_error(resumed.stderr)
    if name != LATEST:
        verified = in_workspace(pipeline.ws, "verify")
        assert verified.exit_code == 1 and path.name in verified.stdout


def test_checkpoint_files_never_unpickle_code(pipeline, tmp_path):
    """train_state.pt is read with weights_only=True: a pickle that would run code is refused, not run."""
    import pickle

    from pdiff.errors import ArtifactError
    from pdiff.models.checkpoint import load_train_state

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "train_state.pt"
    import torch

    torch.save({"step": 1, "payload": Exploit()}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(ArtifactError, match="train_state.pt"):
        load_train_state(evil)
    assert not marker.exists()
