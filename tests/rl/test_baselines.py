"""The paper's RL baselines (mepoly_dist.zoo.baselines): PPO-GMM's density, entropy estimate and
SB3 round trip; FPO's CFM loss, ratio and SB3 round trip.  Math is checked against independent
numpy/scipy computations."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from scipy import stats
from stable_baselines3 import PPO
import zuko

from mepoly_dist.zoo.baselines import FPO, FPOPolicy, GMMActorCriticPolicy, GMMDistribution, NSFActorCriticPolicy, NSFDistribution
from mepoly_dist.zoo.baselines.flow import sample_and_log_prob
from mepoly_dist.zoo.envs import make_vec_env

K, D = 3, 2


def _gmm_params(seed=0, scale=0.5):
    """float64 mixture parameters for one state: logits (K), means (K, D), log-stds (K, D)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=K)
    means = rng.uniform(-0.8, 0.8, size=(K, D))
    log_stds = np.log(rng.uniform(0.3, 0.7, size=(K, D)) * scale / 0.5)
    flat = np.concatenate([logits, means.ravel(), log_stds.ravel()])
    return logits, means, log_stds, torch.tensor(flat[None], dtype=torch.float64)


def _scipy_density(a, logits, means, log_stds):
    """Mixture density of atanh(a) times the Jacobian 1 / prod(1 - a^2), computed with scipy."""
    w = np.exp(logits - logits.max())
    w /= w.sum()
    u = np.arctanh(a)
    density = sum(w[k] * np.prod(stats.norm.pdf(u, means[k], np.exp(log_stds[k])), axis=-1) for k in range(K))
    return density / np.prod(1 - a**2, axis=-1)


def _box_rule(n=300):
    x, w = legendre.leggauss(n)
    gx, gy = np.meshgrid(x, x, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], -1), np.outer(w, w).ravel()


def test_gmm_log_prob_matches_scipy_mixture_with_change_of_variables():
    logits, means, log_stds, params = _gmm_params()
    dist = GMMDistribution(D, n_components=K).proba_distribution(params.expand(50, -1))
    a = np.random.default_rng(1).uniform(-0.99, 0.99, size=(50, D))
    expected = np.log(_scipy_density(a, logits, means, log_stds))
    np.testing.assert_allclose(dist.log_prob(torch.tensor(a)).numpy(), expected, rtol=1e-10, atol=1e-10)


def test_gmm_density_integrates_to_one_on_the_box_and_samples_stay_inside():
    *_, params = _gmm_params(seed=2)
    nodes, weights = _box_rule()
    dist = GMMDistribution(D, n_components=K).proba_distribution(params.expand(len(nodes), -1))
    mass = float((weights * dist.log_prob(torch.tensor(nodes)).exp().numpy()).sum())
    assert mass == pytest.approx(1.0, abs=1e-6)
    samples = dist.sample()
    assert bool((samples.abs() < 1).all())


def test_gmm_monte_carlo_entropy_matches_a_numerical_integral_and_has_gradients():
    *_, params = _gmm_params(seed=3)
    nodes, weights = _box_rule()
    log_p = GMMDistribution(D, n_components=K).proba_distribution(params.expand(len(nodes), -1)).log_prob(torch.tensor(nodes)).numpy()
    exact = float(-(weights * np.exp(log_p) * log_p).sum())
    params = params.clone().requires_grad_(True)
    dist = GMMDistribution(D, n_components=K, entropy_samples=20_000).proba_distribution(params)
    estimate = dist.entropy()
    assert estimate.shape == (1,)
    assert float(estimate.detach()) == pytest.approx(exact, abs=0.02)
    estimate.sum().backward()
    assert bool((params.grad[0, K:] != 0).all())  # means and scales get gradients (reparameterized)
    assert bool((params.grad[0, :K] != 0).any())  # and the weights (stratified over components)


def test_gmm_policy_trains_with_ppo_on_the_bandit_and_round_trips(tmp_path):
    env = make_vec_env("mepoly/Bandit-v0", n_envs=64, seed=0, monitor=False)
    model = PPO(GMMActorCriticPolicy, env, n_steps=1, batch_size=32, n_epochs=2, seed=0, policy_kwargs=dict(n_components=4, entropy_samples=4))
    model.learn(256)
    obs = torch.zeros(16, 1)
    actions = torch.rand(16, 2) * 1.8 - 0.9
    model.save(tmp_path / "gmm.zip")
    loaded = PPO.load(tmp_path / "gmm.zip")
    assert loaded.policy.action_dist.n_components == 4 and loaded.policy.action_dist.entropy_samples == 4
    with torch.no_grad():
        _, lp_a, _ = model.policy.evaluate_actions(obs, actions)
        _, lp_b, _ = loaded.policy.evaluate_actions(obs, actions)
    torch.testing.assert_close(lp_a, lp_b)
    assert lp_a.shape == (16,)
    # predict maps the squashed actions affinely onto the env's box: nothing clipped
    predicted, _ = loaded.predict(np.zeros((100, 1), np.float32))
    assert predicted.shape == (100, 2) and np.all(np.abs(predicted) < 1)


def test_gmm_bad_options_name_the_problem():
    env = make_vec_env("mepoly/Bandit-v0", n_envs=2, monitor=False)
    with pytest.raises(ValueError, match="n_components"):
        PPO(GMMActorCriticPolicy, env, policy_kwargs=dict(n_components=0))
    with pytest.raises(ValueError, match="Gaussian-policy option"):
        PPO(GMMActorCriticPolicy, env, policy_kwargs=dict(log_std_init=-1.0))
    with pytest.raises(ValueError, match="Box action space"):
        PPO(GMMActorCriticPolicy, "CartPole-v1")
    with pytest.raises(ValueError, match="expected 20 mixture parameters"):
        GMMDistribution(2, n_components=4).proba_distribution(torch.zeros(3, 7))


def _nsf(latent=None, seed=0, **options):
    """A float64 NSF action distribution for one random latent state, its hyper-networks given
    non-trivial weights (the policy's initialisation starts them near the identity)."""
    torch.manual_seed(seed)
    dist = NSFDistribution(D, **{"transforms": 2, "hidden_features": (16, 16), **options})
    head = dist.proba_distribution_net(latent_dim=4).double()
    head.init_hyper_networks(hidden_gain=1.0, output_gain=1.0)
    latent = torch.randn(1, 4, dtype=torch.float64) if latent is None else latent
    return dist, head, latent


def test_nsf_log_prob_is_the_change_of_variables_of_its_sampling_map():
    """Independent of zuko's log-determinants: log pi(a) = log N(z) - log|det da/dz| with the
    Jacobian of the map z -> a = tanh(g(z)) by autograd."""
    dist, head, latent = _nsf()
    flow = head(latent)
    for z in torch.randn(5, D, dtype=torch.float64):
        to_action = lambda z: torch.tanh(flow.transform.inv(z[None]))[0]  # noqa: E731
        a = to_action(z)
        jacobian = torch.autograd.functional.jacobian(to_action, z)
        expected = -0.5 * float(z @ z) - D / 2 * math.log(2 * math.pi) - math.log(abs(float(torch.linalg.det(jacobian))))
        assert float(dist.proba_distribution(flow).log_prob(a[None]).detach()) == pytest.approx(expected, abs=1e-8)


def test_nsf_density_integrates_to_one_on_the_box_and_its_entropy_estimate_matches_a_numerical_integral():
    dist, head, latent = _nsf(seed=1)
    nodes, weights = _box_rule()
    with torch.no_grad():
        log_p = dist.proba_distribution(head(latent.expand(len(nodes), -1))).log_prob(torch.tensor(nodes)).numpy()
    assert float((weights * np.exp(log_p)).sum()) == pytest.approx(1.0, abs=1e-4)
    exact = float(-(weights * np.exp(log_p) * log_p).sum())
    mc = NSFDistribution(D, transforms=2, hidden_features=(16, 16), entropy_samples=20_000).proba_distribution(head(latent))
    estimate = mc.entropy()
    assert estimate.shape == (1,)
    assert float(estimate.detach()) == pytest.approx(exact, abs=0.03)
    estimate.sum().backward()  # reparameterized: the gradient reaches the flow's weights
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in head.parameters())


@pytest.mark.parametrize("features", [2, 3])
def test_nsf_fused_sampler_gives_zukos_draws_log_densities_and_gradients(features):
    """sample_and_log_prob against zuko's own rsample_and_log_prob (same draws, float64) and the
    log-density of its draws against the flow's forward-direction log_prob (a different pass)."""
    torch.manual_seed(3)
    flow_net = zuko.flows.NSF(features=features, context=4, transforms=3, hidden_features=(16, 16)).double()
    for mlp in (m for m in flow_net.modules() if isinstance(m, zuko.nn.MaskedMLP)):
        for layer in (m for m in mlp if isinstance(m, torch.nn.Linear)):
            torch.nn.init.normal_(layer.weight, std=0.5)  # far from the identity, so every sweep matters
    context = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    results = []
    for draw in (lambda flow: flow.rsample_and_log_prob((7,)), lambda flow: sample_and_log_prob(flow, (7,))):
        torch.manual_seed(4)
        u, log_q = draw(flow_net(context))
        grads = torch.autograd.grad(u.sin().sum() + log_q.sum(), [context, *flow_net.parameters()])
        results.append((u, log_q, grads))
    (u_ref, log_q_ref, grads_ref), (u, log_q, grads) = results
    assert u.shape == (7, 5, features) and log_q.shape == (7, 5)
    torch.testing.assert_close(u, u_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_q, log_q_ref, rtol=0, atol=1e-12)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(log_q, flow_net(context).log_prob(u), rtol=0, atol=1e-9)


def test_nsf_mode_is_the_image_of_the_base_mode_and_samples_stay_inside():
    dist, head, latent = _nsf(seed=2)
    flow = head(latent.expand(3, -1))
    dist.proba_distribution(flow)
    expected = torch.tanh(flow.transform.inv(torch.zeros(3, D, dtype=torch.float64)))
    torch.testing.assert_close(dist.mode(), expected)
    assert bool((dist.sample().abs() < 1).all())


def test_nsf_policy_starts_state_independent_trains_with_ppo_and_round_trips(tmp_path):
    env = make_vec_env("mepoly/Bandit-v0", n_envs=64, seed=0, monitor=False)
    model = PPO(NSFActorCriticPolicy, env, n_steps=1, batch_size=32, n_epochs=2, seed=0,
                policy_kwargs=dict(transforms=2, hidden_features=[16, 16], entropy_samples=4))
    # SB3's gain 0.01 stays on the hyper-networks' output layers only: a near-identity start
    hyper = [m for m in model.policy.action_net.modules() if type(m).__name__ == "MaskedMLP"]
    assert hyper and all(float(mlp[0].weight.detach().abs().max()) > 0.1 and float(mlp[-1].weight.detach().abs().max()) < 0.05 for mlp in hyper)
    before = [p.detach().clone() for p in model.policy.action_net.parameters()]
    model.learn(256)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.action_net.parameters()))
    model.save(tmp_path / "nsf.zip")
    loaded = PPO.load(tmp_path / "nsf.zip")
    assert loaded.policy.action_dist.transforms == 2 and loaded.policy.action_dist.hidden_features == (16, 16)
    obs, actions = torch.zeros(16, 1), torch.rand(16, 2) * 1.8 - 0.9
    with torch.no_grad():
        _, lp_a, _ = model.policy.evaluate_actions(obs, actions)
        _, lp_b, _ = loaded.policy.evaluate_actions(obs, actions)
    torch.testing.assert_close(lp_a, lp_b)
    predicted, _ = loaded.predict(np.zeros((100, 1), np.float32), deterministic=True)
    assert predicted.shape == (100, 2) and np.all(np.abs(predicted) < 1) and np.ptp(predicted, axis=0).max() < 1e-5


def test_nsf_bad_options_name_the_problem():
    env = make_vec_env("mepoly/Bandit-v0", n_envs=2, monitor=False)
    with pytest.raises(ValueError, match="transforms"):
        PPO(NSFActorCriticPolicy, env, policy_kwargs=dict(transforms=0))
    with pytest.raises(ValueError, match="hidden_features"):
        PPO(NSFActorCriticPolicy, env, policy_kwargs=dict(hidden_features=[]))
    with pytest.raises(ValueError, match="Gaussian-policy option"):
        PPO(NSFActorCriticPolicy, env, policy_kwargs=dict(log_std_init=-1.0))
    with pytest.raises(TypeError, match="NormalizingFlow"):
        NSFDistribution(2).proba_distribution(torch.zeros(3, 7))


def _fpo(n_envs=256, **kwargs):
    env = make_vec_env("mepoly/Bandit-v0", n_envs=n_envs, seed=0, monitor=False)
    options = dict(n_steps=1, batch_size=64, n_epochs=2, gamma=1.0, gae_lambda=1.0, seed=0, num_fpo_samples=8,
                   policy_kwargs=dict(net_arch=dict(pi=[16, 16], vf=[16])))
    return FPO("MlpPolicy", env, **{**options, **kwargs})


def test_fpo_cfm_loss_matches_a_hand_computation():
    policy = _fpo().policy
    obs, a = torch.zeros(1, 1), torch.tensor([[0.3, -0.5]])
    eps, t = torch.randn(1, 5, D), torch.rand(1, 5)
    found = policy.cfm_loss(obs, a, eps, t)
    # by hand: x_t = (1 - t) eps + t a; v = W3 tanh(W2 tanh(W1 [s, x_t, t] + b1) + b2) + b3; loss = mean_d (v - (a - eps))^2
    W1, b1 = policy.velocity_net[0].weight, policy.velocity_net[0].bias
    W2, b2 = policy.velocity_net[2].weight, policy.velocity_net[2].bias
    W3, b3 = policy.action_net.weight, policy.action_net.bias
    expected = torch.empty(5)
    for i in range(5):
        x_t = (1 - t[0, i]) * eps[0, i] + t[0, i] * a[0]
        inp = torch.cat([obs[0], x_t, t[0, i : i + 1]])
        v = W3 @ torch.tanh(W2 @ torch.tanh(W1 @ inp + b1) + b2) + b3
        expected[i] = ((v - (a[0] - eps[0, i])) ** 2).sum() / D
    torch.testing.assert_close(found[0], expected.detach())
    assert found.shape == (1, 5)


def test_fpo_ratio_is_one_before_the_first_update_and_moves_after():
    model = _fpo()
    seen = []
    original = model.log_ratio

    def spy(data):
        log_ratio, new = original(data)
        seen.append(log_ratio.detach().clone())
        return log_ratio, new

    model.log_ratio = spy
    model.learn(256)
    assert torch.equal(seen[0], torch.zeros_like(seen[0]))  # exactly 1 before any gradient step
    assert float(seen[-1].abs().max()) > 0  # the last minibatch follows updates
    assert model.rollout_buffer.cfm_eps.shape == (256, 8, D)
    assert all(float(s.abs().max()) <= model.ratio_log_clip for s in seen)


def test_fpo_learns_on_the_bandit_and_round_trips(tmp_path):
    model = _fpo(learning_rate=1e-3)
    model.learn(512)
    model.save(tmp_path / "fpo.zip")
    loaded = FPO.load(tmp_path / "fpo.zip")
    assert isinstance(loaded.policy, FPOPolicy) and loaded.num_fpo_samples == 8 and loaded.policy.flow_steps == 10
    obs = np.zeros((32, 1), np.float32)
    a, _ = model.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    sampled, _ = loaded.predict(np.zeros((500, 1), np.float32))
    assert sampled.shape == (500, 2) and np.all(np.abs(sampled) <= 1)  # SB3 clips x_1 to the box, as for its Gaussian
    assert len(np.unique(sampled[:, 0])) > 100  # stochastic


def test_fpo_bad_options_name_the_problem():
    with pytest.raises(ValueError, match="no tractable entropy"):
        _fpo(ent_coef=0.1)
    with pytest.raises(ValueError, match="num_fpo_samples"):
        _fpo(num_fpo_samples=0)
    with pytest.raises(ValueError, match="FPOPolicy"):
        FPO(GMMActorCriticPolicy, make_vec_env("mepoly/Bandit-v0", n_envs=2, monitor=False))
    with pytest.raises(ValueError, match="Box action space"):
        FPO("MlpPolicy", gym.make("CartPole-v1"))
    with pytest.raises(NotImplementedError, match="no log-likelihood"):
        _fpo().policy.evaluate_actions(torch.zeros(2, 1), torch.zeros(2, 2))


@pytest.mark.parametrize("policy", ["gmm", "nsf", "fpo"])
def test_cli_trains_and_reloads_the_baselines_on_the_bandit(tmp_path, policy):
    import json

    from mepoly_dist.zoo.cli import main
    from mepoly_dist.zoo.config import resolve_config
    from mepoly_dist.zoo.train import load_model

    config = resolve_config("lemniscate", policy)
    assert config.algo == ("fpo" if policy == "fpo" else "ppo") and config.n_timesteps == 102_400 and config.n_envs == 1024
    out = tmp_path / policy
    main(["train", "lemniscate", "--policy", policy, "--steps", "1024", "--hp", "n_epochs=1", "--out", str(out), "--no-progress-bar"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["policy"] == policy and metrics["num_timesteps"] == 1024 and metrics["alpha"] == 0.2
    assert 0.0 <= metrics["coverage"] <= 1.0 and (out / "density.png").exists()
    _, model = load_model(out)
    assert type(model).__name__ == ("FPO" if policy == "fpo" else "PPO")
