"""rl-zoo3 with MePoly through its stock commands (``python -m rl_zoo3.train`` / ``enjoy``): a
run from ``examples/rl_zoo3/ppo.yml``, the saved model played back, and an Optuna search whose
trials carry MePoly's ``order`` and ``ent_coef`` and whose best trial trains again with
``--trial-id``.  Each command runs in a subprocess (rl-zoo3 patches gymnasium on import), on
budgets of a few hundred steps."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("rl_zoo3")
optuna = pytest.importorskip("optuna")

from stable_baselines3 import PPO  # noqa: E402

from mepoly_dist.zoo.envs import BANDIT_ID  # noqa: E402  (importing it registers the environment)
from mepoly_dist.sb3 import MePolyActorCriticPolicy  # noqa: E402
from mepoly_dist.zoo.targets import manifold_reward, target_points  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HYPERPARAMS = ROOT / "examples" / "rl_zoo3" / "ppo.yml"
BANDIT = ["--algo", "ppo", "--env", "mepoly/Bandit-v0", "--gym-packages", "mepoly_dist.zoo.rl_zoo3", "-conf", str(HYPERPARAMS)]
# Optuna searches of a few hundred steps on one environment.  rl-zoo3's PPO space reaches 4096
# steps per rollout, batches of 4 and 20 epochs (20,000 gradient steps); the random sampler's
# seed 6 draws two cheap trials (128 and 256 steps, batch 1024, 5 and 20 epochs; orders 8 and 8).
TUNING = ["-optimize", "-n", "256", "--n-evaluations", "1", "--eval-episodes", "2",
          "--sampler", "random", "--seed", "6", "--no-optim-plots"]


def load(path: Path) -> PPO:
    """A model rl-zoo3 saved, loaded without importing rl-zoo3 (its learning-rate schedule is
    pickled as an rl_zoo3 object: replaced here, as ``rl_zoo3.enjoy`` does)."""
    return PPO.load(path, device="cpu", custom_objects={"learning_rate": 0.0, "lr_schedule": lambda _: 0.0})


def rl_zoo3(command: str, *args: str, cwd: Path) -> str:
    """Run ``python -m rl_zoo3.<command> args`` and return its output (stdout and stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", f"rl_zoo3.{command}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"rl_zoo3.{command} failed:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def bandit_run(tmp_path_factory) -> Path:
    """One PPO update of the bandit settings (64 environments x 16 steps), saved by rl-zoo3."""
    cwd = tmp_path_factory.mktemp("zoo")
    rl_zoo3("train", *BANDIT, "-f", "logs", "-n", "1024", "--seed", "0", cwd=cwd)
    return cwd / "logs" / "ppo" / "mepoly-Bandit-v0_1"


def test_train_saves_a_mepoly_model_with_the_file_settings(bandit_run):
    model = load(bandit_run / "mepoly-Bandit-v0.zip")
    assert isinstance(model.policy, MePolyActorCriticPolicy)
    assert (model.policy.family.dim, model.policy.family.order) == (2, 14)
    assert (model.n_envs, model.n_steps, model.batch_size, model.n_epochs) == (64, 16, 171, 10)
    assert (model.gamma, model.gae_lambda, model.ent_coef, model.normalize_advantage) == (1.0, 1.0, 0.2, False)
    with zipfile.ZipFile(bandit_run / "mepoly-Bandit-v0.zip") as archive:
        learning_rate = json.loads(archive.read("data"))["learning_rate"]
    assert "SimpleLinearSchedule" in learning_rate[":type:"] and learning_rate["initial_value"] == 2e-3  # lin_2.0e-3

    saved = bandit_run / "mepoly-Bandit-v0"
    config = dict(yaml.load((saved / "config.yml").read_text(), Loader=yaml.UnsafeLoader))
    assert config["policy"] == "mepoly_dist.sb3.MePolyActorCriticPolicy"
    assert config["policy_kwargs"]["order"] == 14 and config["env_kwargs"] == {"target": "lemniscate"}
    args = yaml.load((saved / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert args["gym_packages"] == ["mepoly_dist.zoo.rl_zoo3"] and args["seed"] == 0
    assert "rl_zoo3.train" in (saved / "command.txt").read_text()

    # rl-zoo3's Monitor files: one per environment, one row per one-step episode, rewards of eq. 15
    monitors = sorted(bandit_run.glob("*.monitor.csv"))
    assert len(monitors) == 64
    rows = np.concatenate([np.loadtxt(path, delimiter=",", skiprows=2, ndmin=2) for path in monitors])
    assert rows.shape[0] == 1024 and (rows[:, 1] == 1).all()
    assert ((rows[:, 0] >= 0) & (rows[:, 0] <= 1)).all()


def test_enjoy_plays_the_saved_policy_mode(bandit_run):
    output = rl_zoo3("enjoy", "--algo", "ppo", "--env", "mepoly/Bandit-v0", "--gym-packages", "mepoly_dist.zoo.rl_zoo3",
                     "-f", "logs", "--no-render", "-n", "4", cwd=bandit_run.parents[2])
    assert "4 Episodes" in output
    shown = float(re.search(r"Mean reward: (\S+) \+/- 0\.00", output).group(1))
    # enjoy acts with the mode (deterministic): its reward, recomputed from the loaded model
    model = load(bandit_run / "mepoly-Bandit-v0.zip")
    action, _ = model.predict(np.zeros(1, dtype=np.float32), deterministic=True)
    assert shown == pytest.approx(float(manifold_reward(action[None], target_points("lemniscate"))[0]), abs=0.005)


def _study(path: Path, name: str):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name=name, storage=storage)


def test_optuna_tunes_order_and_ent_coef_and_keeps_the_file_policy_kwargs(tmp_path):
    storage = tmp_path / "study.log"
    rl_zoo3("train", *BANDIT, *TUNING, "--n-trials", "2", "-f", "logs", "--storage", str(storage), "--study-name", "mepoly",
            "-params", "n_envs:1", "policy_kwargs:dict(order=14, lambda_clip=8.0)", cwd=tmp_path)
    study = _study(storage, "mepoly")
    assert len(study.trials) == 2 and len(list((tmp_path / "logs" / "ppo").glob("report_mepoly-Bandit-v0_*.csv"))) == 1
    for trial in study.trials:
        assert trial.distributions["order"].choices == (4, 6, 8, 10, 12, 14, 16)
        ent_coef = trial.distributions["ent_coef"]
        assert (ent_coef.low, ent_coef.high, ent_coef.log) == (1e-4, 0.5, True)  # not rl-zoo3's 1e-8 .. 0.1
        assert "n_steps_pow" in trial.params and "net_arch" in trial.params  # rl-zoo3's own PPO space
        # the complete policy_kwargs of the trial, as rl-zoo3 reads them from a file or -params
        policy_kwargs = eval(trial.user_attrs["policy_kwargs"], {"nn": torch.nn})
        width = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}[trial.params["net_arch"]]
        activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[trial.params["activation_fn"]]
        assert policy_kwargs == dict(order=trial.params["order"], lambda_clip=8.0, net_arch=dict(pi=width, vf=width),
                                     activation_fn=activation)
        policy = PPO(MePolyActorCriticPolicy, gym.make(BANDIT_ID), policy_kwargs=policy_kwargs, device="cpu").policy
        assert (policy.family.order, policy.action_net.lambda_clip) == (trial.params["order"], 8.0)

    # a trial trains again through rl-zoo3's converter (order inside policy_kwargs); trial 1,
    # since rl-zoo3 2.9.2 ignores --trial-id 0 (it tests the id's truth value)
    trial = study.trials[1]
    rl_zoo3("train", *BANDIT, "-f", "logs", "-n", "256", "--seed", "0", "-params", "n_envs:4",
            "--storage", str(storage), "--study-name", "mepoly", "--trial-id", "1", cwd=tmp_path)
    model = load(tmp_path / "logs" / "ppo" / "mepoly-Bandit-v0_2" / "mepoly-Bandit-v0.zip")
    assert model.policy.family.order == trial.params["order"]
    assert model.ent_coef == pytest.approx(trial.params["ent_coef"])
    assert model.gamma == pytest.approx(1 - trial.params["one_minus_gamma"])
    assert model.n_steps == 2 ** trial.params["n_steps_pow"]


def test_optuna_search_space_is_rl_zoo3s_for_other_policies(tmp_path):
    storage = tmp_path / "study.log"
    rl_zoo3("train", *BANDIT, *TUNING, "--n-trials", "1", "-f", "logs", "--storage", str(storage), "--study-name", "gaussian",
            "-params", "n_envs:1", "policy:'MlpPolicy'", "policy_kwargs:dict()", cwd=tmp_path)
    (trial,) = _study(storage, "gaussian").trials
    assert "order" not in trial.params and "policy_kwargs" not in trial.user_attrs
    ent_coef = trial.distributions["ent_coef"]
    assert (ent_coef.low, ent_coef.high) == (1e-8, 0.1)
    assert ast.literal_eval(_study(storage, "gaussian").user_attrs["policy_kwargs"]) == {}
