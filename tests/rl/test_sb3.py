"""The Stable-Baselines3 adapter: shapes, action scaling, save/load, and every SB3 / sb3-contrib
algorithm the issue names (PPO, A2C, TRPO through the registered KL, RecurrentPPO)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import TRPO, RecurrentPPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.distributions import kl_divergence as sb3_kl_divergence

from mepoly_dist import BlockMePoly, MePoly
from mepoly_dist.sb3 import MePolyActorCriticPolicy, MePolyDistribution, MePolyRecurrentActorCriticPolicy

SMALL = dict(order=4)  # 15 natural parameters for D = 2, 5 for D = 1


class BoxBandit(gym.Env):
    """One-step env with an asymmetric 2-D action box, to see SB3's unscaling at work."""

    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.Box(np.array([0.0, -3.0], np.float32), np.array([2.0, 5.0], np.float32))

    def __init__(self):
        self.seen = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.seen.append(np.array(action))
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), -float(np.sum(action**2)), True, False, {}


def _ppo(env=None, **kwargs):
    env = env or BoxBandit()
    return PPO(MePolyActorCriticPolicy, env, n_steps=32, batch_size=16, n_epochs=2, seed=0, policy_kwargs=dict(SMALL, **kwargs))


def test_distribution_shapes_and_values_match_core_mepoly():
    dist = MePolyDistribution(action_dim=2, order=4)
    head = dist.proba_distribution_net(latent_dim=8)
    latent = torch.randn(5, 8)
    natural_params = head.natural_params(latent)
    assert natural_params.shape == (5, dist.family.num_params) and bool((natural_params[:, 0] == 0).all())
    actions = dist.actions_from_params(natural_params)
    assert actions.shape == (5, 2) and bool(((actions >= -1) & (actions <= 1)).all())
    reference = MePoly(natural_params, dist.family)
    assert dist.log_prob(actions).shape == (5,)
    assert dist.entropy().shape == (5,)
    torch.testing.assert_close(dist.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(dist.entropy(), reference.entropy())
    sampled, log_prob = dist.log_prob_from_params(natural_params)
    assert sampled.shape == (5, 2) and log_prob.shape == (5,)
    assert isinstance(dist.distribution, torch.distributions.Distribution)
    # what the policy does: the head returns the density, which proba_distribution wraps as it is
    density = head(latent)
    assert dist.proba_distribution(density).distribution is density
    torch.testing.assert_close(dist.log_prob(actions), reference.log_prob(actions))
    with pytest.raises(ValueError, match="family"):
        dist.proba_distribution(MePolyDistribution(action_dim=2, order=3).proba_distribution_net(8)(latent))


def test_initial_policy_is_close_to_uniform():
    model = _ppo()
    obs = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (64, 3)), dtype=torch.float32)
    with torch.no_grad():
        entropy = model.policy.get_distribution(obs).entropy()
    assert entropy.shape == (64,)
    # uniform on [-1, 1]^2 has entropy 2 log 2; orthogonal init with gain 0.01 stays within 1e-3
    assert float((entropy - 2 * math.log(2)).abs().max()) < 1e-3


def test_rollout_actions_are_unscaled_to_the_box_not_clipped():
    env = BoxBandit()
    model = _ppo(env)
    model.learn(64)
    seen = np.stack(env.seen)
    low, high = env.action_space.low, env.action_space.high
    assert np.all(seen >= low) and np.all(seen <= high)
    # the rollout buffer holds the raw [-1, 1] actions; the env got low + (a + 1)(high - low) / 2
    raw = model.rollout_buffer.actions.reshape(-1, 2)
    assert np.all(np.abs(raw) <= 1)
    np.testing.assert_allclose(seen[-len(raw):], low + 0.5 * (raw + 1) * (high - low), rtol=1e-5, atol=1e-5)
    # uniform on the unit cube maps to the box: both halves of the wide axis are used
    assert seen[:, 1].min() < 0 < seen[:, 1].max() and seen[:, 1].max() > 2


def test_evaluate_actions_shapes_are_exactly_batch():
    model = _ppo()
    obs = torch.zeros(7, 3)
    actions = torch.rand(7, 2) * 2 - 1
    values, log_prob, entropy = model.policy.evaluate_actions(obs, actions)
    assert values.shape == (7, 1) and log_prob.shape == (7,) and entropy.shape == (7,)


def test_predict_deterministic_returns_the_unscaled_mode():
    model = _ppo()
    with torch.no_grad():
        head = model.policy.action_net.linear
        head.weight.zero_()
        head.bias.zero_()
        # energy 3 x - 3 y (Legendre P1 coefficients): the mode is the corner (1, -1)
        lam_index = {tuple(e.tolist()): i for i, e in enumerate(model.policy.family.exponents)}
        head.bias[lam_index[(1, 0)] - 1] = 3.0
        head.bias[lam_index[(0, 1)] - 1] = -3.0
    action, _ = model.predict(np.zeros(3, np.float32), deterministic=True)
    np.testing.assert_allclose(action, [2.0, -3.0], atol=1e-4)
    stochastic = np.stack([model.predict(np.zeros(3, np.float32))[0] for _ in range(50)])
    assert stochastic[:, 0].std() > 0.05  # sampling, not the mode


def test_save_load_round_trip_gives_identical_log_probs(tmp_path):
    model = _ppo(quadrature="gauss_legendre:40", lambda_clip=7.5)
    model.learn(64)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip")
    assert loaded.policy.family.config == model.policy.family.config
    assert loaded.policy.action_net.lambda_clip == 7.5
    obs = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (16, 3)), dtype=torch.float32)
    actions = torch.rand(16, 2) * 2 - 1
    _, lp_a, ent_a = model.policy.evaluate_actions(obs, actions)
    _, lp_b, ent_b = loaded.policy.evaluate_actions(obs, actions)
    assert torch.equal(lp_a, lp_b) and torch.equal(ent_a, ent_b)


def test_lambda_clip_clamps_natural_parameters():
    model = _ppo(lambda_clip=2.0)
    with torch.no_grad():
        model.policy.action_net.linear.bias.fill_(50.0)
        natural_params = model.policy.action_net.natural_params(torch.zeros(1, 64))
    assert float(natural_params.abs().max()) == 2.0


def test_a2c_learns_without_error_and_logs_entropy():
    model = A2C(MePolyActorCriticPolicy, BoxBandit(), n_steps=8, seed=0, policy_kwargs=SMALL)
    model.learn(64)
    assert "train/entropy_loss" in model.logger.name_to_value


def test_trpo_uses_the_registered_exact_kl():
    model = TRPO(MePolyActorCriticPolicy, BoxBandit(), n_steps=64, batch_size=32, seed=0, policy_kwargs=SMALL)
    obs = torch.zeros(4, 3)
    p = model.policy.get_distribution(obs)
    with torch.no_grad():
        kl_same = sb3_kl_divergence(p, p)
    assert kl_same.shape == (4,) and float(kl_same.abs().max()) == 0.0
    model.learn(128)
    assert model.logger.name_to_value["train/is_line_search_success"] > 0
    assert model.logger.name_to_value["train/kl_divergence_loss"] > 0


def test_recurrent_ppo_with_unit_box():
    unit = np.ones(1, np.float32)
    env = gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), -unit, unit)
    model = RecurrentPPO(MePolyRecurrentActorCriticPolicy, env, n_steps=32, batch_size=16, n_epochs=1, seed=0, policy_kwargs=SMALL)
    model.learn(64)
    action, state = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert action.shape == (1,) and state is not None


def test_recurrent_policy_rejects_boxes_it_would_clip():
    with pytest.raises(ValueError, match="RescaleAction"):
        RecurrentPPO(MePolyRecurrentActorCriticPolicy, "Pendulum-v1", policy_kwargs=SMALL)


@pytest.mark.parametrize(
    "space, message",
    [
        (spaces.Discrete(3), "Box action space"),
        (spaces.Box(-1, 1, (2, 2)), "flat"),
        (spaces.Box(-np.inf, np.inf, (2,)), "finite"),
    ],
)
def test_unsupported_action_spaces_raise(space, message):
    with pytest.raises(ValueError, match=message):
        MePolyActorCriticPolicy(BoxBandit.observation_space, space, lambda _: 1e-3, **SMALL)


def test_gaussian_only_options_raise():
    with pytest.raises(ValueError, match="use_sde"):
        PPO(MePolyActorCriticPolicy, BoxBandit(), use_sde=True, policy_kwargs=SMALL)
    with pytest.raises(ValueError, match="log_std_init"):
        _ppo(log_std_init=-1.0)
    with pytest.raises(ValueError, match="lambda_clip"):
        _ppo(lambda_clip=-1.0)
    with pytest.raises(TypeError, match="keyword arguments"):
        MePolyActorCriticPolicy(BoxBandit.observation_space, BoxBandit.action_space, lambda _: 1e-3, [8])
    with pytest.raises(TypeError, match="n_components"):  # another head's option is SB3's unknown keyword
        _ppo(n_components=3)


def test_diagnostics_callback_logs_under_its_own_prefix(tmp_path):
    import csv

    from stable_baselines3.common.logger import configure

    from mepoly_dist.sb3 import MePolyDiagnostics

    model = _ppo()
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(64, callback=MePolyDiagnostics())
    rows = list(csv.DictReader((tmp_path / "progress.csv").open()))
    logged = {k: float(v) for k, v in rows[-1].items() if k.startswith("mepoly/") and v}
    assert set(logged) == {"mepoly/entropy_mean", "mepoly/entropy_min", "mepoly/natural_params_abs_max", "mepoly/log_partition_mean"}
    assert 0 < logged["mepoly/entropy_min"] <= logged["mepoly/entropy_mean"] <= 2 * math.log(2) + 1e-4
    assert logged["mepoly/natural_params_abs_max"] >= 0


@pytest.mark.parametrize("share", [True, False])
def test_apply_orthogonal_init_reproduces_sb3s_own_initialisation(share):
    """The helper that MePoly, GMM and FPO policies call from their ``_build`` draws exactly the
    weights SB3's ``ActorCriticPolicy._build`` draws for the same seed (same gains, same order)."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    from mepoly_dist.sb3 import apply_orthogonal_init

    env = BoxBandit()
    kwargs = dict(observation_space=env.observation_space, action_space=env.action_space, lr_schedule=lambda _: 1e-3,
                  share_features_extractor=share)
    torch.manual_seed(0)
    ours = ActorCriticPolicy(**kwargs, ortho_init=False)  # default init, then SB3's gains by the helper
    ours.ortho_init = True
    apply_orthogonal_init(ours)
    torch.manual_seed(0)
    stock = ActorCriticPolicy(**kwargs, ortho_init=True)
    for (name, mine), theirs in zip(ours.state_dict().items(), stock.state_dict().values()):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0, msg=name)
    assert ours.action_net.weight.norm(dim=1).max() < 0.011  # gain 0.01 on the head


def test_sb3_head_with_blocks_starts_uniform_and_round_trips(tmp_path):
    from gymnasium import spaces
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from mepoly_dist.sb3 import MePolyActorCriticPolicy

    model = PPO(MePolyActorCriticPolicy, make_vec_env("Pendulum-v1", n_envs=1, seed=0), n_steps=32, batch_size=32, n_epochs=1, seed=0,
                policy_kwargs=dict(order=6, blocks=1))
    assert isinstance(model.action_space, spaces.Box)
    obs = torch.as_tensor(model.env.reset())
    dist = model.policy.get_distribution(obs).distribution
    assert isinstance(dist, BlockMePoly) and dist.family.sizes == [1]
    latent = model.policy.mlp_extractor.forward_actor(model.policy.extract_features(obs, model.policy.pi_features_extractor))
    assert model.policy.action_net.natural_params(latent)[..., 0].abs().max() == 0  # the constant feature is pinned
    model.learn(64)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip")
    actions = torch.rand(1, 1) * 2 - 1
    a = model.policy.get_distribution(obs).log_prob(actions)
    b = loaded.policy.get_distribution(obs).log_prob(actions)
    assert torch.allclose(a, b) and loaded.policy.action_dist.family.sizes == [1]


def test_sb3_ppo_iteration_on_the_device(device):
    from stable_baselines3 import PPO

    from mepoly_dist.zoo.envs import make_vec_env
    from mepoly_dist.sb3 import MePolyActorCriticPolicy

    env = make_vec_env("mepoly/Bandit-v0", n_envs=16, seed=0, target="lemniscate")
    model = PPO(MePolyActorCriticPolicy, env, n_steps=1, batch_size=16, n_epochs=1, seed=0, device=device, policy_kwargs=dict(order=6))
    model.learn(32)
    assert next(model.policy.parameters()).device.type == device.type
    action, _ = model.predict(env.reset(), deterministic=True)
    assert action.shape == (16, 2) and np.isfinite(action).all()
