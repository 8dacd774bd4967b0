"""gpm, the multi-vector projection: with memory 1 it is `project`; g_PLM loses exactly its component in the
span; the basis keeps what the energy threshold says; its state survives a save and load; every rule reports
the share of ‖g_PLM‖ it removes; bad settings exit 2 naming the allowed range."""

from __future__ import annotations

import io
import statistics

import pytest
import torch
from diffusion_cases import (
    SCHEDULE,
    chain_loss,
    combine,
    dm_loss,
    plain_dm,
    plain_plm,
    reference_gradient,
    small_denoiser,
    written_gradient,
)
from support.cli import one_line_error, runner

from pdiff.cli import app
from pdiff.methods.gradient_basis import GradientBasis, orthonormal_basis
from pdiff.methods.guidance import GUIDANCE_RULES, GuidanceTrace
from pdiff.workspace.root import Workspace

P = 50  # length of the synthetic gradients


def random_vectors(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, P, generator=torch.Generator().manual_seed(seed))


def fed(basis: GradientBasis, vectors: torch.Tensor) -> GradientBasis:
    """`basis` after an update with each row of `vectors`, in order."""
    for v in vectors:
        basis.update(v, float(v.norm()))
    return basis


def test_gpm_with_memory_one_is_project_step_after_step() -> None:
    """Three steps of both rules on twin models: the same .grad at every step (the basis is the current û)."""
    models = {rule: small_denoiser() for rule in ("project", "gpm")}
    basis = GradientBasis(memory=1, refresh_every=1)
    for step in range(3):
        for rule, model in models.items():
            combine(
                model,
                lambda m, s=step: dm_loss(m, SCHEDULE, seed=10 + s),
                lambda m, s=step: chain_loss(m, SCHEDULE, seed=20 + s),
                rule,
                0.7,
                basis,
            )
        torch.testing.assert_close(
            written_gradient(models["gpm"]), written_gradient(models["project"]), rtol=3e-7, atol=0.0
        )  # 1 float32 ulp
        with torch.no_grad():  # move both models alike, so that the next step's gradients differ
            for a, b in zip(models["project"].parameters(), models["gpm"].parameters(), strict=True):
                a -= 0.01 * a.grad
                b -= 0.01 * a.grad
        assert basis.rank == 1


@pytest.mark.parametrize("memory, refresh_every", [(4, 1), (4, 3), (8, 2)])
def test_projected_plm_gradient_is_orthogonal_to_every_basis_vector(memory: int, refresh_every: int) -> None:
    model = small_denoiser()
    basis = GradientBasis(memory=memory, refresh_every=refresh_every, energy=1.0)
    for seed in range(6):  # fill the ring with the denoising gradients of several noise draws
        g = reference_gradient(model, lambda m, s=seed: dm_loss(m, SCHEDULE, seed=s))
        basis.update(g, float(g.norm()))
    g_dm, g_plm = reference_gradient(model, plain_dm), reference_gradient(model, plain_plm)
    result = combine(model, plain_dm, plain_plm, "gpm", 1.0, basis)
    vectors = basis.vectors()
    assert vectors.shape[1] == basis.rank == result.basis_rank > 1
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(basis.rank, dtype=torch.float64))
    orthogonal = written_gradient(model).double() - g_dm.double()  # λ = 1: the projected g_PLM
    assert (vectors.T @ orthogonal).abs().max() <= 1e-5 * float(g_plm.norm())
    # the current g_DM is in the span: removing it leaves nothing
    assert float((g_dm.double() - basis.removed(g_dm.double())).norm()) <= 1e-9 * float(g_dm.norm())
    # in double precision the projection is exact
    removed = basis.removed(g_plm.double())
    assert (vectors.T @ (g_plm.double() - removed)).abs().max() <= 1e-12 * float(g_plm.norm())
    assert result.removed_share == pytest.approx(float(removed.norm() / g_plm.norm()), rel=1e-6)


@pytest.mark.parametrize("energy", [0.5, 0.99, 1.0])
def test_parallel_gradients_give_a_basis_of_rank_one(energy: float) -> None:
    g = random_vectors(1)[0]
    basis = fed(
        GradientBasis(memory=5, energy=energy), torch.stack([c * g for c in (1.0, -3.0, 0.2, 7.5, -1e-3)])
    )
    assert basis.basis.shape[1] == 1 and basis.rank == 1
    unit = g.double() / g.double().norm()
    assert abs(float(basis.vectors()[:, 0] @ unit)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("energy, rank", [(0.6, 1), (0.9, 2), (0.95, 3), (1.0, 3)])
def test_the_basis_keeps_the_directions_the_energy_threshold_asks_for(energy: float, rank: int) -> None:
    # squared singular values 9, 4 and 1: cumulative shares 0.64, 0.93, 1
    columns = torch.zeros(P, 3, dtype=torch.float64)
    columns[0, 0], columns[1, 1], columns[2, 2] = 3.0, 2.0, 1.0
    assert orthonormal_basis(columns, energy).shape == (P, rank)


def test_the_ring_keeps_the_last_m_gradients_and_refreshes_every_k_steps() -> None:
    vectors = random_vectors(7)
    basis = fed(GradientBasis(memory=3, refresh_every=2, energy=1.0), vectors)
    # the last refresh was at update 7 (step index 6): the ring then held gradients 5, 6, 7
    expected = vectors[4:] / vectors[4:].norm(dim=1, keepdim=True)
    kept = basis.basis @ (basis.basis.T @ expected.double().T)
    torch.testing.assert_close(kept, expected.double().T)
    stale = basis.basis.clone()
    basis.update(vectors[0], float(vectors[0].norm()))  # update 8: no refresh, the new g_DM is added apart
    assert torch.equal(basis.basis, stale) and basis.rank == 4


def test_the_state_survives_save_and_load() -> None:
    """A basis saved mid-way (between refreshes) and loaded into a new one projects as the original does."""
    vectors = random_vectors(9, seed=1)
    original = fed(GradientBasis(memory=4, refresh_every=3, energy=0.9), vectors[:5])
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = GradientBasis(memory=4, refresh_every=3, energy=0.9)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    probe = random_vectors(1, seed=2)[0].double()
    for v in vectors[5:]:
        for basis in (original, resumed):
            basis.update(v, float(v.norm()))
        assert torch.equal(original.removed(probe), resumed.removed(probe))
    with pytest.raises(ValueError, match="differ"):
        GradientBasis(memory=5).load_state_dict(original.state_dict())


def test_every_rule_reports_the_share_it_removes() -> None:
    g_dm, g_plm = (
        reference_gradient(small_denoiser(), plain_dm),
        reference_gradient(small_denoiser(), plain_plm),
    )
    cosine = float(g_dm @ g_plm / (g_dm.norm() * g_plm.norm()))
    expected = {
        "project": abs(cosine),
        "gpm": abs(cosine),
        "sum": 0.0,
        "none": 1.0,
        "plm-only": 0.0,
        "pcgrad": abs(cosine) if cosine < 0 else 0.0,
    }
    assert set(expected) == set(GUIDANCE_RULES)
    trace = GuidanceTrace()
    for rule, share in expected.items():
        result = combine(small_denoiser(), plain_dm, plain_plm, rule)
        assert result.removed_share == pytest.approx(share, abs=1e-6), rule
        assert result.cosine == pytest.approx(cosine, abs=1e-6)
        trace.add(result)
    summary = trace.summary()
    assert summary["guidance_cosine_median"] == pytest.approx(cosine, abs=1e-6)
    assert summary["guidance_removed_share_median"] == pytest.approx(
        statistics.median(expected.values()), abs=1e-6
    )
    assert summary["guidance_basis_rank_median"] == 1  # only the gpm step has a basis
    restored = GuidanceTrace()
    restored.load_state_dict(trace.state_dict())
    assert restored.summary() == summary


def test_guidance_defaults_are_the_papers_and_project() -> None:
    from pdiff.stages.diffuse import DiffuseConfig

    config = DiffuseConfig()
    assert config.guidance == "project" and config.lam == 1.0
    assert config.gpm.model_dump() == {"memory": 10, "refresh_every": 10, "energy": 0.99}


@pytest.mark.parametrize(
    "setting, needle",
    [
        ("gpm.memory=0", "greater than or equal to 1"),
        ("gpm.refresh_every=0", "greater than or equal to 1"),
        ("gpm.energy=0", "(0, 1]"),
        ("gpm.energy=1.5", "(0, 1]"),
        ("gpm.energy=nan", "(0, 1]"),
        ("guidance=gpms", "gpm"),
        ("lam=-1", "greater than or equal to 0"),
    ],
)
def test_bad_gpm_settings_exit_2_naming_the_allowed_range(tmp_path, setting: str, needle: str) -> None:
    ws, _ = Workspace.init(tmp_path / "ws")
    result = runner.invoke(
        app, ["-w", str(ws.root), "diffuse", "--env", "cheetah-vel", "--preset", "smoke", "--set", setting]
    )
    assert result.exit_code == 2, result.output
    line = one_line_error(result.stderr)
    key, value = setting.split("=")
    assert f"setting {key}=" in line and value in line and needle in line, line
    assert not (ws.root / "runs" / "diffuse").exists()


def test_the_basis_refuses_bad_settings_as_a_library_too() -> None:
    from pdiff.errors import UsageError

    for kwargs, needle in (
        ({"memory": 0}, ">= 1"),
        ({"refresh_every": -2}, ">= 1"),
        ({"energy": 0.0}, "(0, 1]"),
    ):
        with pytest.raises(UsageError, match=needle.replace("(", r"\(").replace("]", r"\]")):
            GradientBasis(**kwargs)
