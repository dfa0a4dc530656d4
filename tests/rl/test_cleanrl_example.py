"""examples/cleanrl_ppo_mepoly.py, the single-file PPO: it imports only torch, gymnasium, numpy and
the core at module top, parses its dataclass, and short runs on the bandit and on Pendulum write
the metrics, the run folder and the logs they promise."""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cleanrl_ppo_mepoly.py"
SHORT_BANDIT = ["--num-envs", "64", "--total-timesteps", "256", "--num-minibatches", "2", "--update-epochs", "2", "--metric-samples", "20000"]
LOG_UNIFORM_SQUARE = math.log(4.0)  # entropy of the uniform density on [-1, 1]^2, where the policy starts


def _run(tmp_path: Path, *args: str, env: dict | None = None) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, str(EXAMPLE), *args, "--metrics-json", "metrics.json", "--no-cuda"]
    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"stdout": done.stdout, "metrics": json.loads((tmp_path / "metrics.json").read_text())}


@pytest.fixture(scope="module")
def example():
    """The example as a module (registered in sys.modules, where ``inspect.getsource`` looks for its source)."""
    spec = importlib.util.spec_from_file_location("cleanrl_ppo_mepoly", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_module_top_imports_only_torch_gymnasium_numpy_and_the_core():
    tree = ast.parse(EXAMPLE.read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module)
    assert not {m for m in top if m.startswith(("stable_baselines3", "sb3_contrib", "mepoly_dist.sb3", "mepoly_dist.zoo"))}
    third_party = {m.split(".")[0] for m in top} - set(sys.stdlib_module_names)
    assert third_party == {"gymnasium", "numpy", "torch", "mepoly_dist"}


def test_arguments_come_from_the_dataclass_with_its_docstrings(example, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["x", "--no-anneal-lr", "--order", "6", "--learning-rate", "1e-3", "--target", "two_moons"])
    args = example.parse_args()
    assert (args.anneal_lr, args.order, args.learning_rate, args.target) == (False, 6, 1e-3, "two_moons")
    assert (args.num_envs, args.ent_coef, args.norm_adv, args.num_minibatches) == (1024, 0.2, False, 6)  # the paper's bandit
    monkeypatch.setattr(sys, "argv", ["x", "--help"])
    with pytest.raises(SystemExit):
        example.parse_args()
    assert "the surrogate clipping coefficient epsilon (eq. 11)" in " ".join(capsys.readouterr().out.split())


def test_action_map_and_bad_spaces(example):
    import gymnasium as gym
    import numpy as np
    import torch

    to_box = example.ActionToBox(gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)))
    assert np.allclose(to_box(torch.tensor([[-1.0, -1.0], [0.0, 1.0], [1.0, 0.5]])), [[-2, 0], [0, 1], [2, 0.75]])
    with pytest.raises(ValueError, match="flat Box"):
        example.ActionToBox(gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="finite"):
        example.ActionToBox(gym.spaces.Box(-np.inf, np.inf, shape=(2,)))


def test_bandit_run_metrics_and_tensorboard_log(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = _run(tmp_path, *SHORT_BANDIT, "--seed", "3")
    metrics = out["metrics"]
    assert {"coverage", "tv_to_target", "mean_reward", "eval_return", "train_seconds", "global_step", "sps"} <= set(metrics)
    assert metrics["global_step"] == 256 and metrics["train_seconds"] > 0 and metrics["sps"] > 0
    for key in ("coverage", "tv_to_target", "mean_reward", "eval_return"):
        assert 0.0 <= metrics[key] <= 1.0, key
    # after 4 short iterations the policy is still nearly uniform: low reward, far from exp(r / 0.2)
    assert metrics["tv_to_target"] > 0.3 and metrics["mean_reward"] < 0.6
    (run,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"mepoly-Bandit-v0__cleanrl_ppo_mepoly__3__\d{10}", run.name) and run.name == metrics["run_name"]
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"charts/SPS", "losses/entropy", "losses/approx_kl", "charts/episodic_return", "eval/tv_to_target"} <= tags
    assert [e.step for e in events.Scalars("charts/SPS")] == [64, 128, 192, 256]
    assert "tv_to_target" in out["stdout"] and out["stdout"].count("iteration=") == 4


def test_csv_log_without_tensorboard(tmp_path):
    blocker = tmp_path / "blocker" / "tensorboard"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('tensorboard hidden by the test')\n")
    _run(tmp_path, *SHORT_BANDIT, env={"PYTHONPATH": str(blocker.parent)})
    (run,) = (tmp_path / "runs").iterdir()
    assert not list(run.glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((run / "scalars.csv").open()))
    by_tag = {}
    for row in rows:
        by_tag.setdefault(row["tag"], []).append((int(row["step"]), float(row["value"])))
    # the learning rate anneals linearly to 0 at the last of 4 iterations: 2e-3 * (1 - i / 4) at iteration i
    assert by_tag["charts/learning_rate"] == [(64 * i, pytest.approx(2e-3 * (1 - i / 4))) for i in range(1, 5)]
    # the head starts near lambda = 0: the exact entropy is that of the uniform square, log 4
    assert by_tag["losses/entropy"][0][1] == pytest.approx(LOG_UNIFORM_SQUARE, abs=0.01)


def test_pendulum_smoke_run(tmp_path):
    args = ["--env-id", "Pendulum-v1", "--num-envs", "2", "--num-steps", "100", "--total-timesteps", "400"]
    out = _run(tmp_path, *args, "--num-minibatches", "2", "--update-epochs", "1", "--eval-episodes", "1", "--order", "6")
    metrics = out["metrics"]
    assert metrics["global_step"] == 400 and metrics["env_id"] == "Pendulum-v1"
    assert "coverage" not in metrics
    # 200 steps of a reward in [-(pi^2 + 0.1 * 8^2 + 0.001 * 2^2), 0]
    assert -200 * (math.pi**2 + 6.4 + 0.004) <= metrics["eval_return"] <= 0.0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("Pendulum-v1__cleanrl_ppo_mepoly__0__")
    assert "episodic_return=-" in out["stdout"]  # two 200-step episodes ended inside the 400 steps
