"""Writes the saved SB3 models of ``tests/rl/test_saved_models.py``: run once with an older
version of the package (these files: commit f86e187, before the policies shared one mixin and
the head moved into the core), so that the test checks that models saved then still load.

    python tests/rl/data/make_saved_models.py

Each model is small (order 4, 8-unit layers) and its weights are perturbed away from the
near-uniform start, so that a wrong mapping of its state dict would show in the log-probs.
``expected.json`` holds the log-probs and entropies the saving version computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

from mepoly_dist.sb3 import MePolyActorCriticPolicy, MePolyRecurrentActorCriticPolicy
from mepoly_dist.zoo.baselines import GMMActorCriticPolicy

HERE = Path(__file__).parent


class Bandit(gym.Env):
    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def __init__(self, low=(0.0, -3.0), high=(2.0, 5.0)):
        self.action_space = spaces.Box(np.array(low, np.float32), np.array(high, np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), -float(np.sum(action**2)), True, False, {}


def probe():
    rng = np.random.default_rng(7)
    return rng.uniform(-1, 1, (6, 3)).astype(np.float32), rng.uniform(-0.9, 0.9, (6, 2)).astype(np.float32)


def perturb(policy):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def main():
    torch.manual_seed(0)
    small = dict(net_arch=dict(pi=[8], vf=[8]))
    models = {
        "mepoly_ppo.zip": PPO(MePolyActorCriticPolicy, Bandit(), n_steps=16, batch_size=16, seed=0,
                              policy_kwargs=dict(small, order=4, lambda_clip=5.0)),
        "mepoly_blocks_policy.pth": PPO(MePolyActorCriticPolicy, Bandit(), n_steps=16, batch_size=16, seed=0,
                                        policy_kwargs=dict(small, order=4, blocks=[1, 1], quadrature="gauss_legendre:24")),
        "gmm_ppo.zip": PPO(GMMActorCriticPolicy, Bandit(), n_steps=16, batch_size=16, seed=0,
                           policy_kwargs=dict(small, n_components=2, entropy_samples=4)),
        "mepoly_recurrent_ppo.zip": RecurrentPPO(MePolyRecurrentActorCriticPolicy, Bandit((-1, -1), (1, 1)), n_steps=16, batch_size=16,
                                                 seed=0, policy_kwargs=dict(small, order=4, lstm_hidden_size=4)),
    }
    obs, actions = probe()
    expected = {}
    for name, model in models.items():
        model.learn(16)
        perturb(model.policy)
        # a .pth file holds the policy alone (BasePolicy.save: its _get_constructor_parameters)
        (model.policy if name.endswith(".pth") else model).save(HERE / name)
        if isinstance(model, RecurrentPPO):
            continue  # its log-probs need LSTM states; loading and predicting is the check
        with torch.no_grad():
            _, log_prob, entropy = model.policy.evaluate_actions(torch.as_tensor(obs), torch.as_tensor(actions))
        expected[name] = {"log_prob": log_prob.tolist()}
        if "gmm" not in name:  # the GMM entropy is a Monte-Carlo estimate
            expected[name]["entropy"] = entropy.tolist()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
