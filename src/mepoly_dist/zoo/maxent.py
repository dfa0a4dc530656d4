r"""``MaxEntPPO``: PPO on the maximum-entropy objective, with the entropy inside the returns.

The paper's objective (section 5.2) is

.. math:: J(\pi) = \mathbb E_\pi\Big[\sum_t \gamma^t \big(r_t + \alpha\,\mathcal H(\pi(\cdot\mid s_t))\big)\Big].

SB3's ``ent_coef`` adds :math:`\alpha\,\mathcal H(\pi(\cdot\mid s_t))` to the loss at the states of
the batch only: the policy is rewarded for being uncertain *now*, not for reaching states where
it can stay uncertain later.  Its gradient is the local term of :math:`\nabla J`; the rest is the
policy gradient of the entropy the policy will collect downstream, which is what decides between
several equally rewarding routes: a route that PPO's updates have sharpened holds less entropy
than an unexplored one, so the entropy in the returns pushes back towards the neglected route
instead of letting the more-visited one win.

``MaxEntPPO`` is SB3's :class:`~stable_baselines3.PPO` with one change: after each rollout it adds
:math:`\alpha\,\mathcal H(\pi_{\text{old}}(\cdot\mid s_t))` (``alpha = ent_coef``, the same
temperature as the loss term) to every stored reward and recomputes GAE, so the critic learns the
soft value and the advantages carry the downstream entropy.  The entropy is the action
distribution's own ``entropy()``: exact for MePoly (one quadrature pass per state), closed-form for
SB3's Gaussians, a Monte-Carlo estimate for the GMM baseline.  Time-limit bootstrapping is SB3's
(``gamma * V(s_T)`` is already in the last reward, and ``V`` is now the soft value).

**Termination.**  With episodes that end (a goal reached, a death zone entered) the entropy
term is also a per-step payment for staying in the episode: positive entropies reward wandering,
negative ones reward ending early.  ``entropy_baseline`` subtracts a constant ``b`` from every
entropy (the reward gains ``ent_coef * (H - b)``), which leaves the policy-loss gradient unchanged and
moves only that per-step payment; ``entropy_baseline="box"`` uses the log-volume of the box the
density lives on (``[-1, 1]^D`` for policies that rescale to the action space, as MePoly and the
GMM do; the action box itself for SB3's Gaussian), so the bonus is ``-ent_coef * KL(pi || uniform)`` (never positive: the KL-regularized
objective with the uniform reference).

Example::

    >>> from mepoly_dist.sb3 import MePolyActorCriticPolicy
    >>> from mepoly_dist.zoo import MaxEntPPO
    >>> model = MaxEntPPO(MePolyActorCriticPolicy, env, ent_coef=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import obs_as_tensor

__all__ = ["MaxEntPPO"]


class MaxEntPPO(PPO):
    """PPO with ``ent_coef * H(pi(.|s_t))`` added to each reward before GAE (see the module docstring).

    Args:
        entropy_baseline: a number ``b`` or ``"box"`` (the log-volume of a bounded ``Box`` action
            space); each reward gains ``ent_coef * (H - b)``.  Default 0: the paper's objective.
        entropy_batch: bounds the states evaluated at once when computing the rollout's entropies.
    """

    def __init__(self, *args, entropy_baseline: float | str = 0.0, entropy_batch: int = 4096, **kwargs):
        self.entropy_baseline_spec = entropy_baseline
        self.entropy_batch = int(entropy_batch)
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        # checked here rather than in __init__: ``load`` builds the object without an env or a
        # policy, restores the saved attributes (``entropy_baseline_spec`` among them), then calls this
        super()._setup_model()
        if isinstance(self.observation_space, spaces.Dict):
            raise ValueError("MaxEntPPO supports Box/Discrete observations, not Dict observation spaces")
        if self.ent_coef < 0:
            raise ValueError(f"MaxEntPPO needs a non-negative ent_coef (the MaxEnt temperature), got {self.ent_coef}")
        self.entropy_baseline = self._baseline(self.entropy_baseline_spec)

    def _baseline(self, baseline: float | str) -> float:
        if baseline == "box":
            space = self.action_space
            if not isinstance(space, spaces.Box) or not space.is_bounded():
                raise ValueError(f"entropy_baseline='box' needs a bounded Box action space, got {space}")
            if self.policy.squash_output:  # the density lives on [-1, 1]^D, rescaled to the box by SB3
                return float(space.shape[0] * np.log(2.0))
            return float(np.log(space.high.astype(np.float64) - space.low.astype(np.float64)).sum())
        if isinstance(baseline, str):
            raise ValueError(f"entropy_baseline must be a number or 'box', got {baseline!r}")
        return float(baseline)

    def _rollout_entropies(self, buffer) -> np.ndarray:
        """Entropy of the rollout policy at every state stored in ``buffer``, shape ``(n_steps, n_envs)``."""
        observations = buffer.observations.reshape((-1, *buffer.obs_shape))
        out = []
        with torch.no_grad():
            for start in range(0, observations.shape[0], self.entropy_batch):
                obs = obs_as_tensor(observations[start : start + self.entropy_batch], self.device)
                entropy = self.policy.get_distribution(obs).entropy()
                if entropy is None:
                    raise ValueError(f"{type(self.policy.action_dist).__name__} has no entropy estimate; MaxEntPPO needs one")
                out.append(entropy.double().cpu().numpy())
        return np.concatenate(out).reshape(buffer.rewards.shape)

    def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps: int) -> bool:
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        if self.ent_coef == 0:
            return True
        self.policy.set_training_mode(False)
        entropies = self._rollout_entropies(rollout_buffer) - self.entropy_baseline
        rollout_buffer.rewards += (self.ent_coef * entropies).astype(rollout_buffer.rewards.dtype)
        with torch.no_grad():
            last_values = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=self._last_episode_starts)
        self.logger.record("rollout/entropy_reward_mean", float(self.ent_coef * entropies.mean()))
        return True
