"""MaxEntPPO: the rollout's rewards gain ``ent_coef * H(pi(.|s_t))`` and GAE is recomputed.

The entropies are checked against a composite Simpson integral of ``-p log p`` on a fine grid
(not the head's quadrature), the returns against a GAE loop written here, and the raw rewards against what
the environment itself returned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import VecEnvWrapper  # noqa: E402

from mepoly_dist.sb3 import MePolyActorCriticPolicy  # noqa: E402
from mepoly_dist.zoo import MaxEntPPO  # noqa: E402
from mepoly_dist.zoo.config import resolve_config  # noqa: E402


class NoOp(BaseCallback):
    def _on_step(self) -> bool:
        return True


class RecordRewards(VecEnvWrapper):
    """Keeps every reward the environment returns, as SB3 receives it."""

    def __init__(self, venv):
        super().__init__(venv)
        self.rewards = []

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.rewards.append(rewards.copy())
        return obs, rewards, dones, infos


def _gae(rewards, values, episode_starts, last_values, last_dones, gamma, lam):
    n_steps = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(n_steps)):
        if t == n_steps - 1:
            next_non_terminal, next_values = 1.0 - last_dones, last_values
        else:
            next_non_terminal, next_values = 1.0 - episode_starts[t + 1], values[t + 1]
        delta = rewards[t] + gamma * next_values * next_non_terminal - values[t]
        running = delta + gamma * lam * next_non_terminal * running
        advantages[t] = running
    return advantages, advantages + values


@pytest.mark.parametrize("ent_coef, baseline, offset", [(0.0, 0.0, 0.0), (0.3, 0.0, 0.0), (0.3, "box", np.log(2.0)), (0.3, -1.5, -1.5)])
def test_rollout_rewards_carry_the_exact_entropy_and_gae_is_recomputed(ent_coef, baseline, offset):
    """MePoly's density lives on [-1, 1] (SB3 rescales it to Pendulum's [-2, 2]): "box" is log 2."""
    env = RecordRewards(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
    n_steps, gamma, gae_lambda = 16, 0.9, 0.8
    model = MaxEntPPO(MePolyActorCriticPolicy, env, n_steps=n_steps, batch_size=32, n_epochs=1, gamma=gamma, gae_lambda=gae_lambda,
                      ent_coef=ent_coef, entropy_baseline=baseline, seed=0, policy_kwargs=dict(order=4, net_arch=dict(pi=[16], vf=[16])), device="cpu")
    # make the rollout policy non-uniform, so that entropies differ between states
    with torch.no_grad():
        for p in model.policy.action_net.parameters():
            p.normal_(0, 2.0)
    _, callback = model._setup_learn(n_steps, NoOp())
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, n_steps)
    buffer = model.rollout_buffer

    raw = np.stack(env.rewards)  # (n_steps, n_envs): Pendulum never ends within 16 steps
    obs = torch.as_tensor(buffer.observations.reshape(-1, 3))
    with torch.no_grad():
        dist = model.policy.get_distribution(obs).distribution
        grid = torch.linspace(-1, 1, 8001)
        log_p = dist.log_prob(grid[:, None, None].expand(-1, obs.shape[0], 1)).double()  # (G, B)
        weights = torch.ones(grid.numel(), dtype=torch.float64)  # composite Simpson
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        weights *= 2.0 / (grid.numel() - 1) / 3.0
        p = log_p.exp()
        entropy = (weights[:, None] * -p * log_p).sum(0).numpy().reshape(n_steps, 2)
        mass = (weights[:, None] * p).sum(0).numpy()
    np.testing.assert_allclose(mass, 1.0, atol=2e-5)
    assert np.ptp(entropy) > 0.05  # the check below is not trivially a constant shift
    np.testing.assert_allclose(buffer.rewards, raw + ent_coef * (entropy - offset), atol=2e-4)

    with torch.no_grad():
        last_values = model.policy.predict_values(torch.as_tensor(model._last_obs)).numpy().ravel()
    advantages, returns = _gae(buffer.rewards.astype(np.float64), buffer.values.astype(np.float64), buffer.episode_starts,
                               last_values, model._last_episode_starts.astype(np.float64), gamma, gae_lambda)
    np.testing.assert_allclose(buffer.advantages, advantages, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(buffer.returns, returns, rtol=1e-5, atol=1e-5)


def test_cli_algorithm_override_and_bad_settings():
    config = resolve_config("four_walls", "mepoly", algo="maxent_ppo")
    assert config.algo == "maxent_ppo" and config.hyperparams["ent_coef"] > 0
    with pytest.raises(ValueError, match="unknown algorithm"):
        resolve_config("four_walls", "mepoly", algo="sac")
    with pytest.raises(ValueError, match="non-negative ent_coef"):
        MaxEntPPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1), ent_coef=-0.1)
    with pytest.raises(ValueError, match="number or 'box'"):
        MaxEntPPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1), ent_coef=0.1, entropy_baseline="uniform")


@pytest.mark.parametrize("baseline", [0.25, "box"])
def test_save_and_load_keep_the_algorithm_and_its_baseline(tmp_path, baseline):
    """``MaxEntPPO.load`` rebuilds the model without an env first (SB3's ``load``): the checks and
    the "box" baseline must wait for the restored spaces and policy."""
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    model = MaxEntPPO(MePolyActorCriticPolicy, env, n_steps=8, batch_size=8, n_epochs=1, ent_coef=0.2, entropy_baseline=baseline,
                      seed=0, policy_kwargs=dict(order=3, net_arch=dict(pi=[8], vf=[8])), device="cpu")
    model.save(tmp_path / "model.zip")
    loaded = MaxEntPPO.load(tmp_path / "model.zip", device="cpu")
    expected = np.log(2.0) if baseline == "box" else baseline
    assert isinstance(loaded, MaxEntPPO) and loaded.entropy_baseline == pytest.approx(expected)
    obs = env.reset()
    np.testing.assert_allclose(loaded.policy.get_distribution(torch.as_tensor(obs)).entropy().detach().numpy(),
                               model.policy.get_distribution(torch.as_tensor(obs)).entropy().detach().numpy(), rtol=1e-6)
    loaded.set_env(env)
    loaded.learn(8)  # the loaded model trains on
