"""The TorchRL adapter (mepoly_dist.torchrl) against independent float64 computations, ClipPPOLoss,
a few PPO iterations on the bandit and the example script (examples/torchrl_ppo.py)."""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("torchrl")
from tensordict import TensorDict  # noqa: E402
from torchrl.collectors import Collector  # noqa: E402
from torchrl.data import Bounded, LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement  # noqa: E402
from torchrl.envs import ActionScaling, ExplorationType, GymWrapper, TransformedEnv, set_exploration_type  # noqa: E402
from torchrl.modules import ValueOperator  # noqa: E402
from torchrl.objectives import ClipPPOLoss  # noqa: E402
from torchrl.objectives.value import GAE  # noqa: E402

import mepoly_dist.torchrl as adapter  # noqa: E402
from mepoly_dist import MePoly, MePolyFamily, MePolyHead  # noqa: E402
from mepoly_dist.testing import features_ref, graded_exponents_ref, tensor_gauss_legendre_ref  # noqa: E402
from mepoly_dist.torchrl import TorchRLMePoly, mepoly_actor  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "torchrl_ppo.py"
OBS_DIM, HIDDEN = 3, 16


def make_actor(dim: int, order: int, dtype=torch.float64, scale: float = 1.0) -> tuple:
    """A small MePoly actor whose head is far from uniform (weights times ``scale``), in ``dtype``."""
    head = MePolyHead(HIDDEN, MePolyFamily(dim, order))
    with torch.no_grad():
        head.linear.weight.mul_(scale)
        head.linear.bias.mul_(scale)
    actor = mepoly_actor(nn.Sequential(nn.Linear(OBS_DIM, HIDDEN), nn.Tanh()), head)
    return actor.to(dtype), head


def observations(batch: int, dtype=torch.float64) -> TensorDict:
    return TensorDict(observation=torch.randn(batch, OBS_DIM, dtype=dtype), batch_size=[batch])


def test_docstring_examples():
    result = doctest.testmod(adapter, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_actor_log_prob_is_the_density_of_its_action():
    """The log-probability the actor writes is log p_lambda(a) = lambda . phi(a) - A(lambda), with phi
    from scipy's Legendre polynomials and A on a 400 x 400 Gauss-Legendre grid."""
    dim, order = 2, 6
    actor, head = make_actor(dim, order, scale=3.0)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = actor(observations(6))
    lam = data["natural_params"].numpy()
    A, _, _ = tensor_gauss_legendre_ref(lam, dim, order)
    expected = (features_ref(data["action"].numpy(), graded_exponents_ref(dim, order)) * lam).sum(-1) - A
    np.testing.assert_allclose(data[actor.log_prob_keys[0]].numpy(), expected, rtol=0, atol=1e-9)
    # and it is the core distribution's
    dist = actor.get_dist(data)
    assert type(dist) is TorchRLMePoly and isinstance(dist, MePoly) and dist.family is head.family
    core = MePoly(data["natural_params"], head.family)
    torch.testing.assert_close(data[actor.log_prob_keys[0]], core.log_prob(data["action"]), rtol=0, atol=1e-12)


def test_deterministic_exploration_returns_the_mode():
    """ExplorationType.DETERMINISTIC gives the density's mode, without tensordict's fallback warning;
    the mode is the highest density on a fine grid (D = 1)."""
    actor, head = make_actor(1, 6, scale=4.0)
    td = observations(4)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            data = actor(td.clone())
        plain = actor(td.clone())  # ProbabilisticActor's default interaction type is DETERMINISTIC too
    core_mode = MePoly(data["natural_params"], head.family).mode
    torch.testing.assert_close(data["action"], core_mode, rtol=0, atol=0)
    torch.testing.assert_close(plain["action"], core_mode, rtol=0, atol=0)
    grid = np.linspace(-1.0, 1.0, 200_001)[:, None]
    energy = features_ref(grid, graded_exponents_ref(1, 6)) @ data["natural_params"].numpy().T  # (N, batch)
    mode_energy = (features_ref(data["action"].numpy(), graded_exponents_ref(1, 6)) * data["natural_params"].numpy()).sum(-1)
    assert np.all(mode_energy >= energy.max(0) - 1e-9)
    with set_exploration_type(ExplorationType.RANDOM):  # and sampling still samples
        assert not torch.equal(actor(td.clone())["action"], core_mode)


def test_clip_ppo_loss_uses_the_exact_entropy():
    """ClipPPOLoss's entropy (and its bonus -c H) is the exact entropy of each row, against a
    400 x 400 Gauss-Legendre reference in float64: not a Monte-Carlo estimate (whose error with
    ClipPPOLoss's one sample per row would be of order 1 nat)."""
    dim, order, coefficient = 2, 6, 0.3
    actor, _ = make_actor(dim, order, scale=3.0)
    critic = ValueOperator(nn.Linear(OBS_DIM, 1), in_keys=["observation"]).double()
    loss = ClipPPOLoss(actor, critic, entropy_coeff=coefficient, normalize_advantage=False)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        data = actor(observations(5))
    data["advantage"] = torch.randn(5, 1, dtype=torch.float64)
    data["value_target"] = torch.randn(5, 1, dtype=torch.float64)
    out = loss(data)
    _, H, _ = tensor_gauss_legendre_ref(data["natural_params"].numpy(), dim, order)
    assert np.ptp(H) > 0.1  # rows of different entropies
    # within the family's float64 tolerance (1e-6 nats), and exactly the distribution's entropy()
    assert out["entropy"].item() == pytest.approx(H.mean(), abs=1e-6)
    assert out["loss_entropy"].item() == pytest.approx(-coefficient * H.mean(), abs=1e-6)
    exact = actor.get_dist(data).entropy().mean().item()
    assert out["entropy"].item() == pytest.approx(exact, abs=1e-12)
    # the first ratio of a PPO update is exactly 1: the loss recomputes the collector's log-probabilities
    assert out["mean_ratio"].item() == pytest.approx(1.0, abs=1e-12)


def test_family_follows_the_actor():
    """The family in distribution_kwargs is the head's, a submodule: .to() moves it with the actor."""
    actor, head = make_actor(2, 4, dtype=torch.float32)
    family = actor.module[1].distribution_kwargs["family"]
    assert family is head.family and any(m is family for m in actor.modules())
    actor.double()
    assert family.dtype == torch.float64
    data = actor(observations(3))
    assert data[actor.log_prob_keys[0]].dtype == torch.float64


def test_bad_inputs_raise():
    head = MePolyHead(HIDDEN, MePolyFamily(1, 4))
    trunk = nn.Sequential(nn.Linear(OBS_DIM, HIDDEN), nn.Tanh())
    with pytest.raises(ValueError, match="ActionScaling"):  # Pendulum's box is [-2, 2]
        mepoly_actor(trunk, head, spec=Bounded(low=-2.0, high=2.0, shape=(1,)))
    with pytest.raises(ValueError, match="dimension is 1"):
        mepoly_actor(trunk, head, spec=Bounded(low=-1.0, high=1.0, shape=(2,)))
    with pytest.raises(TypeError, match="MePolyHead"):
        mepoly_actor(trunk, nn.Linear(HIDDEN, 4))
    with pytest.raises(TypeError, match="sets distribution_kwargs"):
        mepoly_actor(trunk, head, distribution_kwargs={})
    mepoly_actor(trunk, head, spec=Bounded(low=-1.0, high=1.0, shape=(1,)))


def test_ppo_iterations_on_the_bandit_train_the_policy():
    """Three PPO iterations of stock TorchRL (GymWrapper, Collector, GAE, ClipPPOLoss) on the bandit
    move the parameters and raise the mean reward of the policy."""
    from mepoly_dist.zoo.envs import register_envs

    register_envs()  # mepoly/Bandit-v0

    torch.manual_seed(0)
    num_envs = 256
    vector_env = gym.make_vec("mepoly/Bandit-v0", num_envs=num_envs, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED})
    env = TransformedEnv(GymWrapper(vector_env), ActionScaling())
    env.set_seed(0)
    head = MePolyHead(32, MePolyFamily(2, 6))
    trunk = nn.Sequential(nn.Linear(1, 32), nn.Tanh())
    actor = mepoly_actor(trunk, head, spec=env.action_spec_unbatched)
    critic = ValueOperator(nn.Linear(1, 1), in_keys=["observation"])
    loss_module = ClipPPOLoss(actor, critic, entropy_coeff=0.05, normalize_advantage=False)
    advantage = GAE(gamma=1.0, lmbda=1.0, value_network=critic, average_gae=False)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=1e-2)
    buffer = ReplayBuffer(storage=LazyTensorStorage(num_envs), sampler=SamplerWithoutReplacement(), batch_size=64)
    collector = Collector(env, actor, frames_per_batch=num_envs, total_frames=4 * num_envs,
                          auto_register_policy_transforms=False)
    before = [p.detach().clone() for p in actor.parameters()]
    rewards = []
    for data in collector:
        rewards.append(data["next", "reward"].mean().item())
        assert data["next", "terminated"].all()  # one-step episodes
        with torch.no_grad():
            advantage(data)
        buffer.extend(data.reshape(-1))
        for _ in range(2):
            for batch in buffer:
                out = loss_module(batch)
                assert torch.isfinite(out["loss_objective"]) and torch.isfinite(out["entropy"])
                optimizer.zero_grad()
                (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
                optimizer.step()
        collector.update_policy_weights_()
    collector.shutdown()
    unchanged = [p for p, old in zip(actor.parameters(), before) if torch.equal(old, p)]
    # all but the first weight, whose input (the bandit's constant observation 0) gives it no gradient
    assert len(unchanged) == 1 and unchanged[0] is trunk[0].weight
    assert rewards[-1] > rewards[0] + 0.05, rewards


def test_example_script_runs_on_the_bandit(tmp_path):
    """The example as a script: two PPO iterations of 64 one-step episodes, the bandit's metrics in JSON."""
    path = tmp_path / "metrics.json"
    command = [sys.executable, str(EXAMPLE), "--env-id", "mepoly/Bandit-v0", "--target", "two_moons",
               "--num-envs", "64", "--total-frames", "128", "--order", "4", "--metrics-json", str(path)]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(path.read_text())
    assert metrics["frames"] == 128 and metrics["num_samples"] == 100_000 and metrics["target"] == "two_moons"
    assert 0 <= metrics["coverage"] <= 1 and 0 <= metrics["tv_to_target"] <= 1 and 0 <= metrics["mean_reward"] <= 1
    assert "| coverage | tv_to_target | mean_reward |" in result.stdout


def test_example_runs_on_pendulum(tmp_path, capsys):
    """The example's main() on Pendulum-v1 (in this process: torchrl is already imported): one PPO
    iteration of 2 x 256 steps and the deterministic evaluation through ActionScaling."""
    spec = importlib.util.spec_from_file_location("torchrl_ppo_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    path = tmp_path / "metrics.json"
    results = example.main(["--num-envs", "2", "--total-frames", "512", "--order", "4", "--seed", "1", "--metrics-json", str(path)])
    assert json.loads(path.read_text()) == pytest.approx(results)
    assert results["frames"] == 512 and results["train_seconds"] > 0
    assert -16.3 * 200 <= results["eval_return"] <= 0  # Pendulum's rewards lie in [-16.3, 0], 200 steps an episode
    assert "eval_return" in capsys.readouterr().out
