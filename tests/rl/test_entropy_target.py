"""``EntropyTarget``: the learned entropy coefficient (SAC's ``ent_coef="auto"`` for PPO), on its own and through ``mepoly train``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from mepoly_dist.zoo.baselines import GMMActorCriticPolicy
from mepoly_dist.zoo.cli import main
from mepoly_dist.zoo.envs import make_vec_env
from mepoly_dist.sb3 import MePolyActorCriticPolicy
from mepoly_dist.zoo import EntropyTarget
from mepoly_dist.zoo.entropy_target import parse_auto_ent_coef
from mepoly_dist.zoo.config import resolve_config
from mepoly_dist.zoo.train import load_model


def _ppo(policy=MePolyActorCriticPolicy, ent_coef=0.3, **policy_kwargs):
    env = make_vec_env("mepoly/SmoothWorld-v0", n_envs=8, seed=0, layout="three_goals")
    return PPO(policy, env, n_steps=16, batch_size=64, n_epochs=2, ent_coef=ent_coef, seed=0, policy_kwargs=policy_kwargs)


class _Alphas(BaseCallback):
    """The ``ent_coef`` at each rollout's end, before ``EntropyTarget`` (placed after it) changes it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.seen.append((self.model.ent_coef,))


class MonteCarloEntropy(_Alphas):
    """Before ``EntropyTarget`` runs at a rollout's end: the policy's mean entropy over the rollout's
    observations estimated by sampling, ``-mean log p(a | s)`` at actions drawn from ``p(. | s)`` (not
    the quadrature entropy that ``EntropyTarget`` reads), and the ``ent_coef`` it starts from."""

    def __init__(self, samples: int = 2048):
        super().__init__()
        self.samples = samples

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        obs = torch.as_tensor(buffer.observations.reshape((-1, *buffer.obs_shape)))
        with torch.no_grad():
            dist = self.model.policy.get_distribution(obs).distribution
            actions = dist.sample((self.samples,))
            entropy = float(-dist.log_prob(actions).mean())
        self.seen.append((self.model.ent_coef, entropy))


def test_one_step_of_log_alpha_per_rollout_against_a_sampled_entropy():
    """log alpha_{k+1} = log alpha_k + eta (target - H_k), with H_k checked by Monte Carlo."""
    torch.manual_seed(0)
    model = _ppo(order=4)
    with torch.no_grad():  # a clearly non-uniform start, so that H_k is not just log 4
        model.policy.action_net.linear.bias.normal_(0, 0.5)
    sampled, target = MonteCarloEntropy(), EntropyTarget(target_entropy=0.5, learning_rate=0.2)
    model.learn(3 * 8 * 16, callback=CallbackList([sampled, target]))
    after = [alpha for alpha, _ in sampled.seen[1:]] + [model.ent_coef]
    assert len(sampled.seen) == 3
    for (alpha, entropy), alpha_next in zip(sampled.seen, after):
        assert 0.5 < entropy < 2 * math.log(2) - 0.2  # not the uniform start, and far from 0 (a relative error shows)
        assert math.log(alpha_next) == pytest.approx(math.log(alpha) + 0.2 * (0.5 - entropy), abs=1.5e-3)


@pytest.mark.parametrize("policy, kwargs", [(MePolyActorCriticPolicy, dict(order=4)), (GMMActorCriticPolicy, dict(n_components=2))])
def test_the_coefficient_moves_towards_its_target(policy, kwargs):
    """Above the largest entropy on the square (log 4) alpha only grows; far below it, it only shrinks."""
    for target, grows in [(3.0, True), (-10.0, False)]:
        model = _ppo(policy, **kwargs)
        trace = MonteCarloEntropy(samples=16) if policy is MePolyActorCriticPolicy else _Alphas()
        model.learn(4 * 8 * 16, callback=CallbackList([trace, EntropyTarget(target_entropy=target)]))
        alphas = [alpha for alpha, *_ in trace.seen] + [model.ent_coef]
        steps = np.diff(np.log(alphas))
        assert (steps > 0).all() if grows else (steps < 0).all(), (target, alphas)


def test_sac_spelling_and_bad_values_name_the_problem():
    assert parse_auto_ent_coef(0.3, None, 2) is None
    assert parse_auto_ent_coef("auto", None, 2) == (1.0, -2.0)  # SAC's defaults: start at 1, target -dim(A)
    assert parse_auto_ent_coef("auto_0.3", 0.5, 2) == (0.3, 0.5)
    assert parse_auto_ent_coef("auto_0.3", "auto", 3) == (0.3, -3.0)
    with pytest.raises(ValueError, match="needs a learned ent_coef"):
        parse_auto_ent_coef(0.3, 0.5, 2)
    with pytest.raises(ValueError, match="'auto_<initial value>'"):
        parse_auto_ent_coef("auto_x", 0.5, 2)
    with pytest.raises(ValueError, match="positive"):
        parse_auto_ent_coef("auto_-1", 0.5, 2)
    with pytest.raises(ValueError, match="target_entropy must be finite"):
        parse_auto_ent_coef("auto", float("nan"), 2)
    with pytest.raises(ValueError, match="number of nats or 'auto'"):
        parse_auto_ent_coef("auto", "high", 2)
    with pytest.raises(ValueError, match="needs a learned ent_coef"):  # caught when the run is configured
        resolve_config("four_walls", "mepoly", hp=["target_entropy=0.5"])
    with pytest.raises(ValueError, match="positive number"):
        EntropyTarget(0.5, learning_rate=0.0)
    with pytest.raises(ValueError, match="ent_coef to be a positive number"):
        _ppo(ent_coef=0.0).learn(128, callback=EntropyTarget(0.5))


def test_mepoly_train_learns_the_coefficient_and_a_resumed_run_keeps_it(tmp_path):
    out = tmp_path / "run"
    args = ["train", "three_goals", "--out", str(out), "--no-progress-bar", "--n-envs", "16", "--checkpoint-every", "512",
            "--hp", "n_steps=32", "n_epochs=1", "ent_coef=auto_0.3", "target_entropy=-1.0", "--policy-kwargs", "order=4"]
    main([*args, "--steps", "1024"])
    config = yaml.safe_load((out / "config.yml").read_text())
    assert config["hyperparams"]["ent_coef"] == "auto_0.3" and config["hyperparams"]["target_entropy"] == -1.0
    _, model = load_model(out)
    learned = model.ent_coef
    assert isinstance(learned, float) and learned < 0.3  # the start (near log 4 nats) is far above -1 nat
    main([*args, "--steps", "1536"])  # resumes from the 1024-step checkpoint, with its learned coefficient
    _, model = load_model(out)
    assert model.num_timesteps == 1536 and model.ent_coef < learned
    assert json.loads((out / "metrics.json").read_text())["num_timesteps"] == 1536
