"""`mepoly train` / `mepoly eval`: presets, run directories, checkpoints and resuming, final
evaluation, and the metrics they report."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import types
import zipfile

import numpy as np
import pytest
import torch
import yaml

from mepoly_dist.zoo import metrics, rollouts
from mepoly_dist.zoo.cli import main
from mepoly_dist.zoo.config import resolve_config
from mepoly_dist.zoo.train import latest_checkpoint


def _train(out, *args):
    main(["train", *args, "--out", str(out), "--no-progress-bar"])
    return json.loads((out / "metrics.json").read_text())


def test_bandit_run_writes_everything_and_resumes(tmp_path):
    out = tmp_path / "lemniscate"
    metrics = _train(out, "lemniscate", "--steps", "1024", "--hp", "n_epochs=2")
    assert metrics["num_timesteps"] == 1024 and metrics["env_id"] == "mepoly/Bandit-v0"
    assert set(metrics) >= {"tv_to_target", "coverage", "mean_reward", "alpha", "normalize_advantage", "train_seconds"}
    assert metrics["alpha"] == 0.2 and metrics["normalize_advantage"] is False
    for name in ("density.png", "learning_curves.png", "model.zip", "config.yml", "eval_curve.csv", "action_samples.npy"):
        assert (out / name).exists(), name
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    config = yaml.safe_load((out / "config.yml").read_text())
    assert config["hyperparams"]["n_epochs"] == 2 and config["policy_kwargs"]["order"] == 14
    assert metrics["torch_threads"] == 1 and metrics["train_seconds"] > 0
    # a longer run on the same directory resumes from the latest checkpoint; its time adds to the first
    # session's, and the thread count of each session is kept beside it
    threads = torch.get_num_threads()
    try:
        resumed = _train(out, "lemniscate", "--steps", "2048", "--threads", "2")
    finally:
        torch.set_num_threads(threads)
    assert resumed["num_timesteps"] == 2048
    assert resumed["torch_threads"] == [1, 2] and resumed["train_seconds"] > metrics["train_seconds"]
    assert latest_checkpoint(out).name == "model_2048_steps.zip"
    assert yaml.safe_load((out / "config.yml").read_text())["hyperparams"]["n_epochs"] == 2  # saved settings kept


def test_interrupted_run_loses_at_most_one_interval(tmp_path):
    out = tmp_path / "run"
    _train(out, "two_moons", "--steps", "3072", "--checkpoint-every", "1024", "--hp", "n_epochs=1")
    # simulate a crash after the second checkpoint: final model and last checkpoint are gone
    (out / "model.zip").unlink()
    (out / "checkpoints" / "model_3072_steps.zip").unlink()
    assert latest_checkpoint(out).name == "model_2048_steps.zip"
    metrics = _train(out, "two_moons", "--steps", "3072")
    assert metrics["num_timesteps"] == 3072
    # the learning curve has one row per evaluation step: the lost continuation's rows were replaced
    steps = [int(line.split(",")[0]) for line in (out / "eval_curve.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 3072


def test_smooth_world_run_and_eval(tmp_path):
    out = tmp_path / "four_walls"
    metrics = _train(out, "four_walls", "--steps", "1024", "--n-envs", "32", "--hp", "n_steps=32", "n_epochs=1", "--policy-kwargs", "order=4")
    assert metrics["layout"] == "four_walls" and len(metrics["starts"]) == 1
    start = metrics["starts"][0]
    assert start["start"] == [12.5, 12.5] and len(start["goal_counts"]) == 4
    assert 0.0 <= metrics["success_rate"] <= 1.0 and 0.0 <= metrics["goal_entropy"] <= 1.0
    assert (out / "trajectories.png").exists()
    main(["eval", str(out), "--episodes", "8"])
    again = json.loads((out / "metrics.json").read_text())
    assert again["episodes_per_start"] == 8 and again["num_timesteps"] == 1024


def test_gaussian_policy_trains_on_the_bandit(tmp_path):
    metrics = _train(tmp_path / "g", "lemniscate", "--policy", "gaussian", "--steps", "1024", "--hp", "n_epochs=1")
    assert metrics["policy"] == "gaussian" and 0.0 <= metrics["coverage"] <= 1.0


def test_bad_options_name_the_problem():
    from mepoly_dist.zoo.envs import make_vec_env

    with pytest.raises(ValueError, match="unknown Smooth World layout 'nowhere'"):
        make_vec_env(resolve_config("four_walls", "mepoly").env_id, layout="nowhere")
    with pytest.raises(ValueError, match="unknown policy"):
        resolve_config("lemniscate", "beta")
    with pytest.raises(ValueError, match="key=value"):
        resolve_config("lemniscate", "mepoly", hp=["ent_coef"])
    with pytest.raises(SystemExit):
        main(["train", "lemniscate", "--policy", "beta"])


def test_overrides_read_numbers_as_python_does():
    config = resolve_config("lemniscate", "mepoly", hp=["learning_rate=1e-3", "ent_coef=2E-1", "clip_range=.25", "gamma=1"],
                            policy_kwargs=["net_arch=[64, 64]"])
    assert config.hyperparams["learning_rate"] == 1e-3 and config.hyperparams["ent_coef"] == 0.2
    assert config.hyperparams["clip_range"] == 0.25 and config.hyperparams["gamma"] == 1
    assert config.policy_kwargs["net_arch"] == [64, 64]
    assert resolve_config("lemniscate", "mepoly", hp=["learning_rate=lin_1e-3"]).hyperparams["learning_rate"] == "lin_1e-3"


def test_presets_follow_the_paper_bandit_settings():
    config = resolve_config("lemniscate", "mepoly")
    assert config.n_envs * config.hyperparams["n_steps"] == 1024
    assert math.ceil(1024 / config.hyperparams["batch_size"]) == 6 and config.hyperparams["n_epochs"] == 10
    assert config.alpha == 0.2 and config.n_timesteps == 102_400 and config.policy_kwargs["order"] == 14
    assert config.hyperparams["normalize_advantage"] is False


class _TwoRoutePilot:
    """A scripted SB3-like policy for tree_in_the_middle: even rows of the batch fly over the
    death block, odd rows under it (waypoint (18.5, 19.5) or (18.5, 5.5), then the goal)."""

    def predict(self, obs, deterministic=False):
        position = np.asarray(obs, dtype=np.float64) * 12.5 + 12.5
        waypoint = np.where((np.arange(len(position)) % 2 == 0)[:, None], [18.5, 19.5], [18.5, 5.5])
        target = np.where(position[:, :1] < 18.0, waypoint, [23.5, 12.5])
        step = target - position
        return step / np.abs(step).max(1, keepdims=True), None


def test_route_counts_of_a_scripted_two_route_policy():
    metrics, paths = rollouts.evaluate_smooth_world_policy(_TwoRoutePilot(), "tree_in_the_middle", episodes=10, seed=3)
    start = metrics["starts"][0]
    assert start["success_rate"] == 1.0 and start["goal_counts"] == [10]
    assert start["route_counts"] == [5, 5] and metrics["route_entropy"] == pytest.approx(1.0)
    assert all(path[:, 1].max() > 15 for path in paths[0][0::2]) and all(path[:, 1].min() < 10 for path in paths[0][1::2])
    assert "route_entropy" not in rollouts.evaluate_smooth_world_policy(_TwoRoutePilot(), "two_walls", episodes=2)[0]


class _EchoPilot:
    """A deterministic SB3-like policy whose action is twice its observation."""

    def predict(self, obs, deterministic=False):
        return 2.0 * np.asarray(obs, dtype=np.float64), None


class _CoinPilot:
    """Full speed right with probability 1/4, left otherwise (torch's RNG): drift (-0.5, 0)."""

    def predict(self, obs, deterministic=False):
        import torch

        right = (torch.rand(len(obs)) < 0.25).numpy()
        return np.stack([np.where(right, 1.0, -1.0), np.zeros(len(obs))], axis=1), None


def test_drift_field_at_the_free_cell_centres():
    from mepoly_dist.zoo.envs.layouts import FREE, LAYOUTS

    layout = LAYOUTS["three_goals"]
    field = rollouts.smooth_world_drift(_EchoPilot(), "three_goals", samples=3)
    positions = field["positions"]
    cells = np.floor(positions).astype(int)
    assert len(positions) == np.count_nonzero(layout.cell_kinds == FREE)
    assert (layout.cell_kinds[cells[:, 1], cells[:, 0]] == FREE).all() and np.allclose(positions - cells, 0.5)
    # observations scale the world [0, 25]^2 onto [-1, 1]^2; the kinematics clip the actions
    expected = np.clip(2.0 * (positions - 12.5) / 12.5, -1.0, 1.0)
    np.testing.assert_allclose(field["drift"], expected, atol=1e-6)
    np.testing.assert_allclose(field["speed"], np.hypot(*expected.T), atol=1e-6)

    import torch

    torch.manual_seed(5)
    expected_rng = torch.rand(2)
    torch.manual_seed(5)
    coin = rollouts.smooth_world_drift(_CoinPilot(), "four_walls", samples=200, seed=1)
    assert torch.equal(torch.rand(2), expected_rng)  # the caller's RNG is left alone
    # 200 draws per cell: the per-cell mean has std sqrt(3)/20 = 0.087; the mean over 600 cells 0.0035
    assert coin["drift"][:, 0].mean() == pytest.approx(-0.5, abs=0.02) and np.all(coin["drift"][:, 1] == 0.0)
    assert np.abs(coin["drift"][:, 0] + 0.5).max() < 6 * 0.087
    np.testing.assert_array_equal(rollouts.smooth_world_drift(_CoinPilot(), "four_walls", samples=200, seed=1)["drift"], coin["drift"])
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        rollouts.smooth_world_drift(_EchoPilot(), "four_walls", samples=0)


def test_goal_entropy_and_bandit_metrics_by_hand():
    assert metrics.goal_entropy([25, 25, 25, 25]) == pytest.approx(1.0)
    assert metrics.goal_entropy([10, 0, 0, 0]) == 0.0
    assert math.copysign(1.0, metrics.goal_entropy([0, 7])) == 1.0  # 0.0, not -0.0 ("-0.00" in tables)
    assert metrics.goal_entropy([1, 1]) == pytest.approx(1.0)
    assert metrics.goal_entropy([3, 1]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2))
    points = np.array([[0.0, 0.0], [0.5, 0.5]])
    samples = np.array([[0.01, 0.0], [0.9, 0.9]])
    found = metrics.bandit_metrics(samples, points, alpha=0.2)
    assert found["coverage"] == 0.5  # only the first point has a sample within 0.05
    expected = np.mean([np.exp(-0.01**2 / 0.02), np.exp(-(2 * 0.4**2) / 0.02)])
    assert found["mean_reward"] == pytest.approx(expected)


def test_seeded_evaluation_leaves_the_training_rng_alone():
    import torch
    from stable_baselines3 import PPO

    from mepoly_dist.zoo.envs import make_vec_env
    from mepoly_dist.sb3 import MePolyActorCriticPolicy

    model = PPO(MePolyActorCriticPolicy, make_vec_env("mepoly/SmoothWorld-v0", n_envs=4), n_steps=4, batch_size=4, policy_kwargs=dict(order=4))
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    rollouts.evaluate_bandit_policy(model.policy, np.zeros((1, 2)), alpha=0.2, num_samples=100, seed=0)
    rollouts.rollout_from_start(model.policy, "four_walls", (12.5, 12.5), episodes=2, seed=0, max_steps=3)
    assert torch.equal(torch.rand(3), expected)


@contextlib.contextmanager
def _pickled_under(old_paths: dict):
    """Classes pickle by reference to the module paths of ``old_paths`` (``class -> module``) while
    this is active, as they did before the package split: each module is registered (with its
    parent packages) and holds the class, whose ``__module__`` names it.  Afterwards the modules
    are gone again, so a zip saved meanwhile refers to modules that do not exist, like an old run's."""
    added, renamed = [], {}
    for cls, module in old_paths.items():
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        setattr(sys.modules[module], cls.__qualname__, cls)
        renamed[cls] = cls.__module__
        cls.__module__ = module
    try:
        yield
    finally:
        for cls, module in renamed.items():
            cls.__module__ = module
        for name in added:
            del sys.modules[name]


def _zip_data(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


def test_runs_saved_before_the_package_split_still_load(tmp_path, capsys):
    from stable_baselines3 import PPO

    from mepoly_dist.zoo.baselines.gmm import GMMActorCriticPolicy
    from mepoly_dist.zoo.train import load_model

    out = tmp_path / "gmm"
    _train(out, "lemniscate", "--policy", "gmm", "--steps", "1024", "--hp", "n_epochs=1")
    _, model = load_model(out)
    model.learning_rate.__module__ = "mepoly_dist.train"  # where linear_schedule lived
    with _pickled_under({GMMActorCriticPolicy: "mepoly_dist.baselines.gmm"}):
        model.save(out / "model.zip")
    assert _zip_data(out / "model.zip")["policy_class"]["__module__"] == "mepoly_dist.baselines.gmm"
    with pytest.raises(ModuleNotFoundError, match="mepoly_dist.baselines"):
        PPO.load(out / "model.zip")  # what SB3 alone does with such a zip

    main(["eval", str(out), "--samples", "2000"])
    assert json.loads((out / "metrics.json").read_text())["num_samples"] == 2000
    _, loaded = load_model(out)
    assert type(loaded.policy) is GMMActorCriticPolicy
    obs = np.zeros((5, 1), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert loaded.learning_rate(0.5) == pytest.approx(1e-3)  # the preset's lin_2e-3, halfway


def test_fpo_runs_saved_before_the_package_split_load_and_train_on(tmp_path):
    from mepoly_dist.zoo.baselines.fpo import FPOPolicy, FPORolloutBuffer
    from mepoly_dist.zoo.train import build_model, load_model, make_env

    config = resolve_config("lemniscate", "fpo", n_envs=8, hp=["batch_size=8", "num_fpo_samples=4"], policy_kwargs=["flow_steps=2"])
    (tmp_path / "config.yml").write_text(yaml.safe_dump(config.to_dict()))
    env = make_env(config, seed=0)
    model = build_model(config, env)
    with _pickled_under({FPOPolicy: "mepoly_dist.baselines.fpo", FPORolloutBuffer: "mepoly_dist.baselines.fpo"}):
        model.save(tmp_path / "model.zip")
    data = _zip_data(tmp_path / "model.zip")
    assert data["policy_class"]["__module__"] == data["rollout_buffer_class"]["__module__"] == "mepoly_dist.baselines.fpo"
    _, loaded = load_model(tmp_path, env=env)
    assert type(loaded.policy) is FPOPolicy and loaded.rollout_buffer_class is FPORolloutBuffer
    loaded.learn(16)  # the rollout buffer of FPO works
    assert loaded.num_timesteps == 16
    env.close()


class _Gone:
    """A class standing for one that a later version no longer has."""


def test_a_model_that_refers_to_a_missing_module_fails_with_a_clear_message(tmp_path, capsys):
    from mepoly_dist.zoo.config import ConfigError
    from mepoly_dist.zoo.train import build_model, load_model, make_env

    config = resolve_config("lemniscate", "mepoly", n_envs=4, policy_kwargs=["order=4"])
    (tmp_path / "config.yml").write_text(yaml.safe_dump(config.to_dict()))
    env = make_env(config, seed=0)
    model = build_model(config, env)
    model.extra_class = _Gone  # saved with the model's attributes, pickled by its module path
    with _pickled_under({_Gone: "mepoly_dist.removed_module"}):
        model.save(tmp_path / "model.zip")
    env.close()
    with pytest.raises(ConfigError, match="refers to the module 'mepoly_dist.removed_module', which mepoly-dist .* does not have"):
        load_model(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "mepoly_dist.removed_module" in err


def test_learning_curves_show_the_checkpoint_evaluations(tmp_path):
    import matplotlib.image

    out = tmp_path / "run"
    _train(out, "lemniscate", "--steps", "3072", "--checkpoint-every", "2048", "--hp", "n_epochs=1")
    rows = (out / "eval_curve.csv").read_text().splitlines()
    assert rows[0] == "timesteps,tv_to_target,coverage,mean_reward"
    # evaluated at the first step, after 2048 more, and at the end of the run
    assert [int(row.split(",")[0]) for row in rows[1:]] == [1024, 3072]
    height, width = matplotlib.image.imread(out / "learning_curves.png").shape[:2]
    assert width > 2.5 * height  # two panels: training episodes and the evaluations
