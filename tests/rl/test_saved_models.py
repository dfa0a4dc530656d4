"""Models saved by an older version of the package still load and give the same numbers.

The files in ``tests/rl/data`` were written by ``tests/rl/data/make_saved_models.py`` at commit
f86e187, before the MePoly and GMM policies shared one mixin and the MePoly head moved into
the core; ``expected.json`` holds the log-probs and entropies that version computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

from mepoly_dist import BlockMePoly, MePoly
from mepoly_dist.sb3 import MePolyActorCriticPolicy
from mepoly_dist.zoo.baselines import GMMActorCriticPolicy

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "expected.json").read_text())


def _probe():
    rng = np.random.default_rng(7)  # the inputs make_saved_models.py evaluated
    return torch.as_tensor(rng.uniform(-1, 1, (6, 3)).astype(np.float32)), torch.as_tensor(rng.uniform(-0.9, 0.9, (6, 2)).astype(np.float32))


def _check_numbers(policy, name):
    obs, actions = _probe()
    with torch.no_grad():
        _, log_prob, entropy = policy.evaluate_actions(obs, actions)
    torch.testing.assert_close(log_prob, torch.tensor(EXPECTED[name]["log_prob"]), rtol=1e-5, atol=1e-5)
    if "entropy" in EXPECTED[name]:
        torch.testing.assert_close(entropy, torch.tensor(EXPECTED[name]["entropy"]), rtol=1e-5, atol=1e-5)


def test_a_saved_mepoly_ppo_model_loads_with_its_options_and_numbers():
    model = PPO.load(DATA / "mepoly_ppo.zip", device="cpu")
    assert isinstance(model.policy, MePolyActorCriticPolicy)
    assert model.policy.family.order == 4 and model.policy.action_net.lambda_clip == 5.0
    assert isinstance(model.policy.get_distribution(torch.zeros(1, 3)).distribution, MePoly)
    _check_numbers(model.policy, "mepoly_ppo.zip")


def test_a_saved_mepoly_policy_with_blocks_loads_alone():
    policy = MePolyActorCriticPolicy.load(DATA / "mepoly_blocks_policy.pth", device="cpu")
    assert isinstance(policy.get_distribution(torch.zeros(1, 3)).distribution, BlockMePoly)
    assert policy.family.sizes == [1, 1] and policy.family.blocks[0].quadrature.spec == "gauss_legendre:24"
    _check_numbers(policy, "mepoly_blocks_policy.pth")


def test_a_saved_gmm_ppo_model_loads_with_its_options_and_numbers():
    model = PPO.load(DATA / "gmm_ppo.zip", device="cpu")
    assert isinstance(model.policy, GMMActorCriticPolicy)
    assert model.policy.action_dist.n_components == 2 and model.policy.action_dist.entropy_samples == 4
    _check_numbers(model.policy, "gmm_ppo.zip")


def test_a_saved_recurrent_mepoly_model_loads_and_predicts():
    model = RecurrentPPO.load(DATA / "mepoly_recurrent_ppo.zip", device="cpu")
    action, state = model.predict(np.zeros(3, np.float32), deterministic=True)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1) and state is not None
    assert model.policy.family.order == 4
