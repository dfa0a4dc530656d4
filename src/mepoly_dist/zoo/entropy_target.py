r"""``EntropyTarget``: a learned entropy coefficient for SB3's on-policy algorithms (SAC's ``ent_coef="auto"``).

A fixed ``ent_coef`` :math:`\alpha` does not fix how spread the policy is: on Smooth World's
three_goals the preset :math:`\alpha = 0.3` leaves MePoly (exact entropy) at about 1.1 nats, near the
uniform density's 1.39, and the GMM baseline (Monte-Carlo entropy) at about 0.9
(``benchmarks/results/smoothworld/smoothworld_three_goals_sweep.md``).  SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms
and Applications", eq. 18) instead learns the temperature so that the policy's mean entropy
tracks a target :math:`\bar{\mathcal H}`, by descending

.. math:: L(\log\alpha) = \log\alpha\,\big(\mathbb E_{s}\,\mathcal H(\pi(\cdot\mid s)) - \bar{\mathcal H}\big).

``EntropyTarget`` takes one step of that descent in :math:`\log\alpha` at the end of every rollout,

.. math:: \log\alpha_{k+1} = \log\alpha_k + \eta\,\big(\bar{\mathcal H} - \hat{\mathcal H}_k\big),

where :math:`\hat{\mathcal H}_k` is the mean entropy of the rollout policy over (up to ``max_rows``
of) the rollout's observations, and writes :math:`\alpha_{k+1}` into ``model.ent_coef`` before the
update of PPO / A2C / TRPO uses it.  The entropy is the action distribution's own ``entropy()``:
exact for MePoly, closed form for SB3's Gaussians, a Monte-Carlo estimate for the GMM baseline.
Since ``ent_coef`` is a saved attribute of the model, a run resumed from a checkpoint continues
from the learned value.  Logged: ``entropy_target/ent_coef`` and ``entropy_target/entropy``.

The SAC-style string form used by ``mepoly train`` is ``--hp ent_coef=auto_0.3 target_entropy=0.5``
(``auto`` alone starts at 1.0, SAC's default); ``target_entropy="auto"`` is SAC's heuristic
``-dim(A)`` nats.  On the bounded densities of MePoly and the GMM the entropy is at most
``D log 2`` (the uniform density on ``[-1, 1]^D``), so a target above that drives ``ent_coef`` up
without end.

Example::

    >>> from stable_baselines3 import PPO
    >>> from mepoly_dist.sb3 import MePolyActorCriticPolicy
    >>> from mepoly_dist.zoo import EntropyTarget
    >>> model = PPO(MePolyActorCriticPolicy, env, ent_coef=0.3)  # doctest: +SKIP
    >>> model.learn(100_000, callback=EntropyTarget(target_entropy=0.5))  # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["EntropyTarget", "parse_auto_ent_coef"]


def parse_auto_ent_coef(ent_coef, target_entropy, action_dim: int) -> tuple[float, float] | None:
    """SAC's spelling of a learned coefficient: ``ent_coef="auto"`` / ``"auto_<initial>"`` with
    ``target_entropy`` a number of nats or ``"auto"`` (``-action_dim``).

    Returns ``(initial ent_coef, target entropy)``, or ``None`` for a fixed numeric ``ent_coef``
    (then ``target_entropy`` must not be given).  Raises ``ValueError`` for anything else."""
    if not (isinstance(ent_coef, str) and ent_coef.startswith("auto")):
        if target_entropy is not None:
            raise ValueError(f"target_entropy={target_entropy!r} needs a learned ent_coef ('auto' or 'auto_<initial>'), got ent_coef={ent_coef!r}")
        return None
    if ent_coef == "auto":
        initial = 1.0
    elif ent_coef.startswith("auto_"):
        try:
            initial = float(ent_coef[5:])
        except ValueError:
            raise ValueError(f"ent_coef={ent_coef!r}: expected 'auto' or 'auto_<initial value>', e.g. 'auto_0.3'") from None
    else:
        raise ValueError(f"ent_coef={ent_coef!r}: expected 'auto' or 'auto_<initial value>', e.g. 'auto_0.3'")
    if not (math.isfinite(initial) and initial > 0):
        raise ValueError(f"ent_coef={ent_coef!r}: the initial value must be a positive number")
    if target_entropy is None or target_entropy == "auto":
        target = -float(action_dim)
    else:
        try:
            target = float(target_entropy)
        except (TypeError, ValueError):
            raise ValueError(f"target_entropy must be a number of nats or 'auto', got {target_entropy!r}") from None
        if not math.isfinite(target):
            raise ValueError(f"target_entropy must be finite, got {target_entropy!r}")
    return initial, target


class EntropyTarget(BaseCallback):
    """Learn ``model.ent_coef`` so that the policy's mean entropy tracks ``target_entropy`` (see the module docstring).

    Args:
        target_entropy: the target mean entropy in nats.
        learning_rate: the step :math:`\\eta` of :math:`\\log\\alpha` per rollout, per nat of entropy error.
        max_rows: observations of each rollout the mean entropy is estimated on (a random subset).
    """

    def __init__(self, target_entropy: float, learning_rate: float = 0.05, max_rows: int = 1024, verbose: int = 0):
        super().__init__(verbose)
        if not math.isfinite(target_entropy):
            raise ValueError(f"target_entropy must be finite, got {target_entropy!r}")
        if not (learning_rate > 0 and math.isfinite(learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        self.target_entropy = float(target_entropy)
        self.learning_rate = float(learning_rate)
        self.max_rows = int(max_rows)

    def _init_callback(self) -> None:
        ent_coef = self.model.ent_coef
        if not (isinstance(ent_coef, (int, float)) and ent_coef > 0):
            raise ValueError(f"EntropyTarget needs the model's ent_coef to be a positive number to start from, got {ent_coef!r}")

    def _on_step(self) -> bool:
        return True

    def rollout_entropy(self) -> float:
        """Mean entropy of the current policy over (a random subset of) the last rollout's observations."""
        buffer = self.model.rollout_buffer
        observations = buffer.observations.reshape((-1, *buffer.obs_shape))
        index = np.random.default_rng(self.num_timesteps).permutation(observations.shape[0])[: self.max_rows]
        obs = torch.as_tensor(observations[index], device=self.model.device)
        with torch.no_grad():
            return float(self.model.policy.get_distribution(obs).entropy().mean())

    def _on_rollout_end(self) -> None:
        entropy = self.rollout_entropy()
        log_alpha = math.log(self.model.ent_coef) + self.learning_rate * (self.target_entropy - entropy)
        self.model.ent_coef = math.exp(log_alpha)
        self.logger.record("entropy_target/entropy", entropy)
        self.logger.record("entropy_target/ent_coef", self.model.ent_coef)
