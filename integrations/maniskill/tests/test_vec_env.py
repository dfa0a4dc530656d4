"""The SB3 factory over ManiSkill tasks: env creation and rollouts on the CPU simulator (worker
processes and the batched adapter that serves ManiSkill's GPU simulation), evaluation, errors, and
a short ``mepoly train maniskill/PushCube-v1`` run with a MePoly block head."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="mani_skill is not installed (pip install -e integrations/maniskill)")
pytest.importorskip("stable_baselines3")

from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv  # noqa: E402

from mepoly_maniskill import make_vec_env  # noqa: E402
from mepoly_maniskill.install_check import find_installation_problem  # noqa: E402
from mepoly_maniskill.vec_env import ManiSkillBatchedVecEnv, resolve_sim_backend  # noqa: E402

_problem = find_installation_problem()
pytestmark = pytest.mark.skipif(_problem is not None, reason=_problem or "")


def _rollout(venv, steps: int, rng: np.random.Generator):
    """Random actions in the box for ``steps`` steps; returns the infos of finished episodes."""
    finished = []
    obs = venv.reset()
    assert obs.shape == (venv.num_envs, *venv.observation_space.shape) and obs.dtype == np.float32
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(venv.num_envs, *venv.action_space.shape)).astype(np.float32)
        obs, rewards, dones, infos = venv.step(actions)
        assert rewards.shape == (venv.num_envs,) and dones.shape == (venv.num_envs,)
        assert np.isfinite(obs).all() and np.isfinite(rewards).all()
        finished += [infos[i] for i in np.flatnonzero(dones)]
    return finished


def test_cpu_factory_runs_worker_processes_with_episode_success():
    venv = make_vec_env("PushCube-v1", n_envs=2, seed=0, sim_backend="cpu")
    try:
        assert isinstance(venv, SubprocVecEnv) and venv.num_envs == 2
        assert venv.observation_space.shape == (35,) and venv.action_space.shape == (4,)  # state obs, pd_ee_delta_pos
        assert np.all(venv.action_space.low == -1) and np.all(venv.action_space.high == 1)
        finished = _rollout(venv, 60, np.random.default_rng(0))  # PushCube episodes last 50 steps
        assert len(finished) >= 2
        for info in finished:
            assert info["terminal_observation"].shape == (35,)
            assert isinstance(info["is_success"], bool) and "success_at_end" in info
    finally:
        venv.close()


def test_same_seed_same_first_observation_and_options_reach_the_task():
    a = make_vec_env("PushCube-v1", n_envs=1, seed=3, max_episode_steps=7)
    b = make_vec_env("PushCube-v1", n_envs=1, seed=3, vec_env_cls=DummyVecEnv)
    try:
        assert isinstance(a, DummyVecEnv)
        np.testing.assert_allclose(a.reset(), b.reset())
        finished = _rollout(a, 7, np.random.default_rng(1))
        assert len(finished) == 1 and finished[0]["TimeLimit.truncated"]
    finally:
        a.close()
        b.close()


def test_batched_adapter_reports_episode_ends_once():
    """The adapter used for ManiSkill's GPU simulation, on the CPU backend (one scene)."""
    venv = ManiSkillBatchedVecEnv("PushCube-v1", 1, sim_backend="physx_cpu", max_episode_steps=10)
    try:
        venv.seed(0)
        finished = _rollout(venv, 25, np.random.default_rng(2))
        assert len(finished) == 2  # episodes end at steps 10 and 20, and only there
        for info in finished:
            assert info["terminal_observation"].shape == (35,) and info["TimeLimit.truncated"]
            assert isinstance(info["is_success"], bool) and isinstance(info["success_at_end"], bool)
        with pytest.raises(ValueError, match="expected actions of shape"):
            venv.step_async(np.zeros((2, 4)))
    finally:
        venv.close()


def _place_cube_on_goal(task) -> None:
    """Teleport PushCube's cube onto its goal, so the next step succeeds and the task terminates."""
    from mani_skill.utils.structs.pose import Pose

    position = task.goal_region.pose.p.clone()
    position[..., 2] = task.obj.pose.p[..., 2]
    task.obj.set_pose(Pose.create_from_pq(p=position))


@pytest.mark.parametrize("bootstrap", [False, True])
def test_success_termination_is_reported_as_truncation_only_when_bootstrapped(bootstrap):
    """bootstrap_terminations: the episode still ends (and resets) at success, but SB3 sees a
    time-limit truncation, on both the worker-process path and the batched adapter."""
    cpu = make_vec_env("PushCube-v1", n_envs=1, seed=0, vec_env_cls=DummyVecEnv, bootstrap_terminations=bootstrap)
    batched = ManiSkillBatchedVecEnv("PushCube-v1", 1, sim_backend="physx_cpu", bootstrap_terminations=bootstrap)
    try:
        batched.seed(0)
        for venv, task in ((cpu, lambda: cpu.envs[0].unwrapped), (batched, lambda: batched._venv.base_env)):
            venv.reset()
            _place_cube_on_goal(task())
            _, _, dones, infos = venv.step(np.zeros((1, 4), dtype=np.float32))
            assert dones[0] and infos[0]["terminated"] and infos[0]["is_success"]
            assert infos[0]["TimeLimit.truncated"] is bootstrap
            assert infos[0]["terminal_observation"].shape == (35,)
    finally:
        cpu.close()
        batched.close()


def test_evaluation_runs_episodes_to_the_time_limit_whatever_the_training_setting(monkeypatch):
    """A policy that succeeds at once (it puts the cube on the goal) still gets full-length
    evaluation episodes from a run configured to end episodes at success."""
    import mepoly_maniskill.vec_env as vec_env
    from mepoly_maniskill.evaluation import evaluate_success

    made = []

    def recording_make_vec_env(*args, **kwargs):
        made.append(vec_env.make_vec_env.__wrapped__(*args, **kwargs))
        return made[-1]

    recording_make_vec_env.__wrapped__ = vec_env.make_vec_env
    monkeypatch.setattr(vec_env, "make_vec_env", recording_make_vec_env)

    class Teleporter:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            _place_cube_on_goal(made[-1].envs[0].unwrapped)
            return np.zeros((len(obs), 4), dtype=np.float32), state

    found = evaluate_success(Teleporter(), "PushCube-v1", episodes=1, n_envs=1, max_episode_steps=6, ignore_terminations=False,
                             bootstrap_terminations=True)
    assert found["episodes"] == 1 and found["success_once"] == 1.0
    assert found["mean_length"] == 6  # not 1: the success did not end the episode


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="did you mean PushCube-v1"):
        make_vec_env("PushCub-v1")
    with pytest.raises(ValueError, match="n_envs must be a positive integer"):
        make_vec_env("PushCube-v1", n_envs=0)
    with pytest.raises(ValueError, match="unknown sim_backend"):
        resolve_sim_backend("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            resolve_sim_backend("gpu")
    assert resolve_sim_backend("auto") == ("physx_cuda" if torch.cuda.is_available() else "physx_cpu")


def test_short_training_run_with_a_block_head_evaluates_and_resumes(tmp_path):
    from mepoly_dist.sb3 import MePolyActorCriticPolicy
    from mepoly_dist.zoo.config import resolve_config
    from mepoly_dist.zoo.train import load_model, train

    config = resolve_config("maniskill/PushCube-v1", "mepoly", seed=0, n_timesteps=64, n_envs=1, checkpoint_every=32,
                            hp=["n_steps=32", "batch_size=32", "n_epochs=1"], policy_kwargs=["net_arch=[32]"])
    config = dataclasses.replace(config, eval_episodes=2)
    assert config.policy_kwargs["blocks"] == [2, 2]
    metrics = train(config, tmp_path / "run", progress_bar=False)
    assert metrics["num_timesteps"] == 64
    for key in ("success_once_mode", "success_once_sampled", "success_at_end_mode", "mean_return_sampled"):
        assert 0.0 <= metrics[key] <= (1.0 if key.startswith("success") else 50.0)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["env_id"] == "maniskill/PushCube-v1"
    curve = (tmp_path / "run" / "eval_curve.csv").read_text().splitlines()
    assert curve[0].startswith("timesteps,success_once_sampled") and len(curve) >= 2
    _, model = load_model(tmp_path / "run")
    assert isinstance(model.policy, MePolyActorCriticPolicy) and model.policy.family.sizes == [2, 2]
    # a longer --steps extends the run from its last checkpoint
    extended = dataclasses.replace(config, n_timesteps=96)
    assert train(extended, tmp_path / "run", progress_bar=False, evaluate=False) == {}
    assert load_model(tmp_path / "run")[1].num_timesteps == 96


def test_mepoly_train_names_an_unknown_env_kwarg_of_a_maniskill_task(tmp_path, capsys):
    from mepoly_dist.zoo import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "maniskill/PushCube-v1", "--env-kwargs", "obs_mod=state", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown env kwarg 'obs_mod'" in error and "did you mean 'obs_mode'" in error
    assert "num_envs" not in error and "ignore_terminations" in error  # make_vec_env's options and the task's, not the run's n_envs
    assert not (tmp_path / "run").exists()
