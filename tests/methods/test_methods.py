"""Every method of `pdiff tune --method` on the smoke reach workspace: tune → save → load as eval does →
identical actions; the frozen Prompt-DT never changes; the reported tunable count matches the definition."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from method_suite import (
    CPU,
    REACH,
    actions_of,
    assert_frozen_parts_equal,
    assert_prompt_equal,
    assert_result_shape,
    expected_tunable_parameters,
    tune_context,
)
from support.cli import runner

from pdiff.cli import app
from pdiff.data.prompts_file import read_prompts, write_prompts
from pdiff.envs import get_family
from pdiff.methods.finetuning import load_tuned, save_tuned, trainable, tuned_path
from pdiff.methods.options import MethodOptions
from pdiff.methods.registry import METHODS, changes_weights, option_sections, trains
from pdiff.models.checkpoint import weights_sha256
from pdiff.rollouts.rollout import load_policy
from pdiff.stages.common import checkpoint_of
from pdiff.stages.tune import TuneConfig

pytestmark = pytest.mark.metaworld


CONDITION_ONLY = ("prompt-diffuser", {"prompt-diffuser.adapt": "condition-only"})


@pytest.mark.parametrize(
    ("method", "options"),
    [*((m, {}) for m in sorted(METHODS)), CONDITION_ONLY],
    ids=[*sorted(METHODS), "prompt-diffuser-condition-only"],
)
def test_method_tunes_saves_and_loads_as_eval_does(trained, method, options, tmp_path):
    ws, pretrain, diffuse = trained
    task = get_family(REACH).test_tasks[0]
    context, config = tune_context(
        ws, pretrain, method, task, diffuse=diffuse, out_dir=tmp_path / "out", steps=2, **options
    )
    policy, sampler, bank = context.policy, context.fewshot, context.fewshot_prompts
    frozen_sha = weights_sha256(policy.model)

    result = METHODS[method].tune_task(context)

    # The frozen Prompt-DT is bit-identical, in memory and on disk.
    assert weights_sha256(policy.model) == frozen_sha
    assert weights_sha256(load_policy(checkpoint_of(pretrain), CPU)[0].model) == frozen_sha
    arch = policy.model.config
    assert_result_shape(result, arch, rows=(1, config.shots))  # Meta-World: a prompt per shot
    plm_parameters = sum(p.numel() for p in policy.model.parameters())
    denoiser = str(checkpoint_of(diffuse) / "model.safetensors")
    assert result.tunable_parameters == expected_tunable_parameters(
        method, config, arch, plm_parameters, denoiser
    )

    # The prompt goes through prompts.h5 unchanged (how eval reads every tune run's prompts).
    write_prompts(tmp_path / "prompts.h5", {(0, task): result.prompt}, {"method": method})
    prompt = read_prompts(tmp_path / "prompts.h5")[0][(0, task)]
    assert_prompt_equal(prompt, result.prompt)
    inputs = sampler.sample(np.random.default_rng(1), [task] * 3, 1)
    if not changes_weights(method):
        assert result.model is None
        # a method that trains its prompt ends away from every real few-shot prompt; prompt-dt uses one
        real = bank.all_for_task(task)
        same = [
            np.array_equal(prompt.states[0], real.states[row])
            and np.array_equal(prompt.actions[0], real.actions[row])
            for row in range(len(real))
        ]
        assert any(same) != trains(method), same
        return
    tuned_names = set(trainable(result.model))
    assert sum(p.numel() for p in trainable(result.model).values()) == result.tunable_parameters
    assert_frozen_parts_equal(result.model, policy.model, tuned_names)
    path = tuned_path(tmp_path, 0, task)
    save_tuned(path, result.model, method, result.options)
    loaded = load_tuned(policy.model, path, method, METHODS[method].attach)
    assert_frozen_parts_equal(loaded, policy.model, tuned_names)
    tuned_actions = actions_of(result.model, inputs, prompt)
    assert torch.equal(actions_of(loaded, inputs, prompt), tuned_actions)
    assert not torch.equal(actions_of(policy.model, inputs, prompt), tuned_actions), "tuning changed nothing"
    assert weights_sha256(policy.model) == frozen_sha


def test_lora_tune_then_eval_through_the_cli(trained):
    ws, pretrain, _ = trained
    base = ["-w", str(ws.root), "--json"]
    tuned = runner.invoke(
        app,
        [
            *base,
            "tune",
            "--method",
            "lora",
            "--pretrain",
            pretrain.run_id,
            "--preset",
            "smoke",
            "--set",
            "steps=2",
            "--set",
            "lora.rank=2",
        ],
    )
    assert tuned.exit_code == 0, tuned.output
    payload = json.loads(tuned.stdout)
    assert payload["method"] == "lora" and payload["tunable_parameters"] == 1 * (2 * 32 * 4 + 2 * 32 * 2)
    run_dir = ws.root / "runs" / "tune" / payload["run_id"]
    manifest = json.loads((run_dir / "run.json").read_text())
    recorded = {o["path"] for o in manifest["outputs"] if o["kind"] == "tuned_weights"}
    assert recorded == {f"tuned/seed-0/task-{t:02d}.safetensors" for t in get_family(REACH).test_tasks}
    evaluated = runner.invoke(app, [*base, "eval", "--tune", payload["run_id"], "--preset", "smoke"])
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    assert result["method"] == "lora" and set(result["per_task"]) == {"11", "17", "25", "36", "41"}

    (run_dir / "tuned" / "seed-0" / "task-11.safetensors").write_bytes(b"not safetensors")
    corrupt = runner.invoke(app, [*base, "verify"])
    assert corrupt.exit_code != 0 and "task-11.safetensors" in corrupt.output
    failed = runner.invoke(app, [*base, "eval", "--tune", payload["run_id"], "--preset", "smoke"])
    assert failed.exit_code == 2 and "task-11.safetensors is corrupt" in failed.output


def test_every_registered_method_is_a_config_choice_and_in_the_cli_help():
    import inspect
    from typing import get_args

    from pdiff.cli.stage_cmds import tune

    assert set(get_args(TuneConfig.model_fields["method"].annotation)) == set(METHODS)
    help_text = inspect.signature(tune).parameters["method"].default.help
    assert set(help_text.replace("(default)", "").rstrip(".").replace(" ", "").split("|")) == set(METHODS)
    assert all(hasattr(module, "DEFAULT_LR") and hasattr(module, "tune_task") for module in METHODS.values())
    assert all(issubclass(module.Options, MethodOptions) for module in METHODS.values())
    # a method with options of its own has its section in the tune config, and tuning it reads that section
    for name, options in option_sections().items():
        assert TuneConfig.model_fields[name].annotation is options
        assert TuneConfig(method=name).options() == options()
