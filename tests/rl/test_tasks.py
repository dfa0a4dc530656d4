"""The task registry of ``mepoly train`` (:mod:`mepoly_dist.zoo.tasks`): built-in tasks, a task
registered by a plug-in (the way an installed integration's entry point adds one), aliases and
presets merged from tasks, and the error for an id nothing serves."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from mepoly_dist.zoo import tasks
from mepoly_dist.zoo.config import RunConfig, load_presets, resolve_config
from mepoly_dist.zoo.train import build_model, make_env


class _CountingTask(tasks.Task):
    """A plug-in task family ``toy/<id>`` that runs Pendulum and counts its calls."""

    learning_curves = True

    def __init__(self):
        self.made = 0

    def matches(self, env_id):
        return env_id.startswith("toy/")

    def aliases(self):
        return {"toy_pendulum": ("toy/Pendulum", {"g": 9.0})}

    def presets(self):
        return {"toy/Pendulum": {"mepoly": {"algo": "ppo", "n_envs": 2, "n_timesteps": 64, "checkpoint_every": 32,
                                            "policy_kwargs": {"order": 4}, "hyperparams": {"n_steps": 32, "batch_size": 32}}}}

    def make_vec_env(self, env_id, n_envs, seed, env_kwargs):
        import gymnasium as gym

        self.made += 1
        return DummyVecEnv([lambda: gym.make("Pendulum-v1", **env_kwargs)] * n_envs)

    def quick_metrics(self, config, policy):
        return {"made": float(self.made)}


@pytest.fixture
def toy_task(monkeypatch):
    task = _CountingTask()
    monkeypatch.setattr(tasks, "_REGISTERED", [])
    tasks.register_task(task)
    return task


def test_built_in_tasks_serve_the_papers_ids_and_gymnasium_the_rest():
    assert isinstance(tasks.find_task("mepoly/Bandit-v0"), tasks.BanditTask)
    assert isinstance(tasks.find_task("mepoly/SmoothWorld-v0"), tasks.SmoothWorldTask)
    assert type(tasks.find_task("Pendulum-v1")) is tasks.Task
    aliases = tasks.all_aliases()
    assert aliases["lemniscate"] == ("mepoly/Bandit-v0", {"target": "lemniscate"})
    assert aliases["two_slits"] == ("mepoly/SmoothWorld-v0", {"layout": "two_slits"})


def test_unknown_ids_name_what_is_missing():
    with pytest.raises(ValueError, match="not an alias .*lemniscate.* and not a gymnasium id"):
        tasks.find_task("NoSuchEnv-v9")
    if not any(t.matches("maniskill/PushCube-v1") for t in tasks.registered_tasks()):  # the integration is not installed here
        with pytest.raises(ValueError, match="integrations/maniskill"):
            tasks.find_task("maniskill/PushCube-v1")
    with pytest.raises(TypeError, match="Task instance"):
        tasks.register_task(_CountingTask)


def test_a_registered_task_brings_its_aliases_presets_and_environments(toy_task):
    assert tasks.find_task("toy/Pendulum") is toy_task
    assert "toy/Pendulum" in load_presets() and "lemniscate" in tasks.all_aliases()
    config = resolve_config("toy_pendulum", "mepoly")
    assert (config.env_id, config.env_kwargs, config.n_envs, config.policy_kwargs) == ("toy/Pendulum", {"g": 9.0}, 2, {"order": 4})
    env = make_env(config, seed=0)
    assert toy_task.made == 1 and env.num_envs == 2
    model = build_model(config, env)
    model.learn(64)
    assert np.isfinite(model.predict(env.reset(), deterministic=True)[0]).all()
    env.close()


def test_registration_order_decides_between_tasks_that_match_the_same_id(toy_task):
    later = tasks.register_task(_CountingTask())
    assert tasks.find_task("toy/anything") is later
    assert tasks.registered_tasks()[:2] == [later, toy_task]


def test_run_configs_round_trip_through_their_dict():
    config = resolve_config("two_walls", "gmm", seed=3)
    assert RunConfig.from_dict(config.to_dict()) == config
