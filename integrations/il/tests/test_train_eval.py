"""Runs end to end: train (tiny presets), save/load round trip, resume, and a one-episode PushCube evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from synthetic_demos import write_trajectory_file

pytest.importorskip("diffusers", reason="diffusers is not installed (pip install -e integrations/il)")

from mepoly_il.cli import eval_command, main, train_command  # noqa: E402
from mepoly_il.train import execution_horizon, load_policy, load_preset  # noqa: E402

#: PushCube-v1's state observation and pd_ee_delta_pos action sizes (Panda arm)
PUSHCUBE_OBS_DIM, PUSHCUBE_ACTION_DIM = 35, 4

TINY = {
    "mepoly": ["mepoly.vae.d_model=16", "mepoly.vae.heads=2", "mepoly.vae.decoder_layers=1", "mepoly.prior.hidden=[16]",
               "mepoly.prior.order=4", "mepoly.stage1.steps=6", "mepoly.stage2.steps=4", "mepoly.stage1.batch_size=16",
               "mepoly.stage2.batch_size=16", "checkpoint_every=2"],
    "dp": ["dp.model.down_dims=[8,16,32]", "dp.model.diffusion_steps=5", "dp.train.steps=6", "dp.train.batch_size=16", "checkpoint_every=2"],
}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return str(write_trajectory_file(tmp_path_factory.mktemp("demos") / "trajectory.h5", [30, 25], PUSHCUBE_OBS_DIM, PUSHCUBE_ACTION_DIM))


@pytest.fixture(scope="module")
def maniskill():
    """Skips (with the reason) where ManiSkill or a Vulkan device for it is missing."""
    pytest.importorskip("mani_skill", reason="mani_skill is not installed (pip install -e integrations/il)")
    from mepoly_maniskill.install_check import find_installation_problem

    problem = find_installation_problem()
    if problem is not None:
        pytest.skip(problem)


@pytest.mark.parametrize("method", ["mepoly", "dp"])
def test_save_load_round_trip_and_resume(method, demos, tmp_path):
    out = tmp_path / method
    summary = train_command("PushCube-v1", demos, method, seed=0, out=str(out), overrides=TINY[method], progress=False)
    assert summary["num_demos"] == 2 and summary["num_pairs"] == 55 and summary["parameters"] > 0
    assert summary["latency_per_chunk"]["median_s"] > 0
    assert (out / "model.pt").exists() and (out / "checkpoints" / "latest.pt").exists() and any((out / "tb").iterdir())
    # the checkpoint carries the seconds of the stage it interrupts, so a resumed run still reports them
    saved = torch.load(out / "checkpoints" / "latest.pt", weights_only=False)
    stage = "stage2" if method == "mepoly" else "dp"
    assert 0 < saved["train_seconds"][stage] <= summary["train_seconds"][stage]
    obs = np.random.default_rng(0).normal(size=(2, PUSHCUBE_OBS_DIM)).astype(np.float32)
    chunks = []
    for _ in range(2):
        policy, config = load_policy(out, deterministic=True)
        torch.manual_seed(1)
        chunks.append(policy.predict_chunk(obs))
    assert chunks[0].shape == (16, PUSHCUBE_ACTION_DIM) and config["method"] == method
    np.testing.assert_array_equal(chunks[0], chunks[1])
    # rerunning the command resumes from the last checkpoint (nothing left to train) and gives the same model
    train_command("PushCube-v1", demos, method, seed=0, out=str(out), overrides=TINY[method], progress=False)
    policy, _ = load_policy(out, deterministic=True)
    torch.manual_seed(1)
    np.testing.assert_allclose(policy.predict_chunk(obs), chunks[0], atol=1e-6)
    # a different configuration on the same directory is refused
    with pytest.raises(ValueError, match="different configuration"):
        train_command("PushCube-v1", demos, method, seed=1, out=str(out), overrides=TINY[method], progress=False)


@pytest.mark.parametrize("preset", ["cpu", "gpu", "reference"])
def test_execution_horizon_per_method(preset):
    """MePoly replans every 2 steps on PushT; DP and the other tasks keep ManiSkill's 8 of 16, except DP at the
    reference schedule on PushT, which replans after every action as ManiSkill's PushT baseline does."""
    for task in ("PushCube-v1", "PickCube-v1", "StackCube-v1", "PushT-v1"):
        config = load_preset(preset, task)
        assert config["data"]["act_horizon"] == 8
        assert execution_horizon({**config, "method": "dp"}) == (1 if (preset, task) == ("reference", "PushT-v1") else 8)
        assert execution_horizon({**config, "method": "mepoly"}) == (2 if task == "PushT-v1" else 8)


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main(["train", "PushCube-v1", "--demos", str(tmp_path / "none.h5"), "--no-progress"]) == 2
    assert "no such trajectory file" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--no-progress"]) == 2
    assert "no trained model" in capsys.readouterr().err


def test_one_episode_evaluation_on_pushcube(demos, tmp_path, maniskill):
    out = tmp_path / "run"
    train_command("PushCube-v1", demos, "mepoly", out=str(out), overrides=TINY["mepoly"] + ["eval.strip_episodes=1"], progress=False)
    result = eval_command(str(out), episodes=1, progress=False)
    if result["render_error"] is None:  # an image strip where rendering works
        assert (out / "eval" / "strip.png").exists()
    assert result["episodes"] == 1 and result["max_episode_steps"] == 100
    assert result["success_once"] in (0.0, 1.0) and result["success_at_end"] in (0.0, 1.0)
    assert result["chunks"] == 100 // 8 + 1 and result["chunk_latency_s"] > 0
    assert json.loads((out / "eval" / "eval.json").read_text())["episodes"] == 1
    # a shorter receding horizon replans more often; its results go to --out-dir, the default eval stays
    short = eval_command(str(out), episodes=1, progress=False, act_horizon=4, out_dir=str(tmp_path / "ah4"))
    assert short["act_horizon"] == 4 and short["chunks"] == 100 // 4
    assert json.loads((tmp_path / "ah4" / "eval.json").read_text())["act_horizon"] == 4
    assert json.loads((out / "eval" / "eval.json").read_text())["act_horizon"] == 8
    with pytest.raises(ValueError, match="act_horizon must lie in 1..16"):
        eval_command(str(out), episodes=1, progress=False, act_horizon=17, out_dir=str(tmp_path / "bad"))


def test_evaluation_is_reproducible_and_leaves_the_callers_rng_alone(demos, tmp_path, maniskill):
    """Sampled chunks depend only on the episode seeds, not on what the process drew before."""
    from mepoly_il.evaluate import evaluate_policy

    out = tmp_path / "run"
    train_command("PushCube-v1", demos, "mepoly", out=str(out), overrides=TINY["mepoly"], progress=False)
    policy, _ = load_policy(str(out))
    assert not policy.deterministic
    recorded = []
    predict = policy.predict_chunk
    policy.predict_chunk = lambda history: recorded.append(predict(history)) or recorded[-1]

    def chunks_of_one_evaluation(rng_draws: int) -> np.ndarray:
        recorded.clear()
        torch.rand(rng_draws)  # move the caller's generator
        evaluate_policy(policy, "PushCube-v1", episodes=2, act_horizon=8, max_episode_steps=16, strip_episodes=0, progress=False)
        return np.stack(recorded)

    torch.manual_seed(123)
    first = chunks_of_one_evaluation(1)
    state_after = torch.get_rng_state()
    torch.manual_seed(123)
    torch.rand(1)
    assert torch.equal(state_after, torch.get_rng_state()), "evaluation changed the caller's RNG state"
    second = chunks_of_one_evaluation(1000)
    assert first.shape == (4, 16, PUSHCUBE_ACTION_DIM)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], first[2]), "episodes of different seeds sampled the same chunk"
