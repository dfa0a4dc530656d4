r"""Training data: (observation history, action chunk) pairs and their normalization.

Pairs come from :class:`mepoly_maniskill.dataset.TrainingPairs` (appendix A, "Data slicing and
horizons": observations :math:`o_{t-T_o+1..t}`, actions :math:`a_{t..t+T_a-1}`, boundary padding
repeats the first observation / last action).  Normalization is computed on the training pairs
and stored with every model (:meth:`Normalization.state_dict`), so a checkpoint evaluates
without the demonstrations:

.. math::

    \tilde o = (o - \mu_o) / \sigma_o, \qquad
    \tilde a = 2\,(a - a_{\min}) / (a_{\max} - a_{\min}) - 1 \in [-1, 1],

per coordinate (standard scores for states, the action box mapped to :math:`[-1, 1]` as in
Diffusion Policy, whose sampler clips to that box).  Coordinates that never vary keep scale 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["Normalization", "PairTensors", "load_pairs"]

#: a coordinate whose spread is below this keeps scale 1 (constant coordinates, e.g. a fixed goal)
MIN_SCALE = 1e-6


@dataclass
class Normalization:
    """Affine maps of observations (standard scores) and actions (to ``[-1, 1]``)."""

    obs_mean: Tensor
    obs_std: Tensor
    action_low: Tensor
    action_high: Tensor

    @classmethod
    def from_arrays(cls, observations: np.ndarray, actions: np.ndarray) -> "Normalization":
        """Statistics of flat ``observations`` (N, obs_dim) and ``actions`` (M, action_dim)."""
        if observations.ndim != 2 or actions.ndim != 2:
            raise ValueError(f"expected 2-d observations and actions, got shapes {observations.shape} and {actions.shape}")
        if not (np.isfinite(observations).all() and np.isfinite(actions).all()):
            raise ValueError("observations or actions contain NaN or inf; the normalization would be undefined")
        obs_std = observations.std(0)
        low, high = actions.min(0), actions.max(0)
        flat = (high - low) < MIN_SCALE
        low, high = np.where(flat, low - 1.0, low), np.where(flat, high + 1.0, high)
        as_tensor = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
        return cls(as_tensor(observations.mean(0)), as_tensor(np.where(obs_std < MIN_SCALE, 1.0, obs_std)), as_tensor(low), as_tensor(high))

    def normalize_obs(self, obs: Tensor) -> Tensor:
        return (obs - self.obs_mean.to(obs)) / self.obs_std.to(obs)

    def normalize_actions(self, actions: Tensor) -> Tensor:
        low, high = self.action_low.to(actions), self.action_high.to(actions)
        return 2.0 * (actions - low) / (high - low) - 1.0

    def denormalize_actions(self, actions: Tensor) -> Tensor:
        low, high = self.action_low.to(actions), self.action_high.to(actions)
        return low + (actions + 1.0) * 0.5 * (high - low)

    @property
    def obs_dim(self) -> int:
        return self.obs_mean.shape[0]

    @property
    def action_dim(self) -> int:
        return self.action_low.shape[0]

    def state_dict(self) -> dict:
        return {"obs_mean": self.obs_mean, "obs_std": self.obs_std, "action_low": self.action_low, "action_high": self.action_high}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalization":
        missing = {"obs_mean", "obs_std", "action_low", "action_high"} - set(state)
        if missing:
            raise KeyError(f"normalization state lacks {sorted(missing)}")
        return cls(**{key: torch.as_tensor(state[key]).cpu() for key in ("obs_mean", "obs_std", "action_low", "action_high")})


@dataclass
class PairTensors:
    """All training pairs, normalized: ``obs`` (N, T_o, obs_dim), ``actions`` (N, T_a, action_dim)."""

    obs: Tensor
    actions: Tensor
    normalization: Normalization
    num_demos: int

    def __len__(self) -> int:
        return self.obs.shape[0]

    def batches(self, batch_size: int, generator: torch.Generator):
        """An endless stream of random minibatches ``(obs, actions)`` (a fresh permutation per epoch)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        size = min(batch_size, len(self))
        while True:
            order = torch.randperm(len(self), generator=generator)
            for start in range(0, len(self) - size + 1, size):
                index = order[start : start + size]
                yield self.obs[index], self.actions[index]


def load_pairs(demos: str | Path, obs_horizon: int, action_horizon: int, num_demos: int | None = None,
               normalization: Normalization | None = None) -> PairTensors:
    """Reads a ManiSkill trajectory file, slices it into pairs and normalizes them.

    Arguments:
        demos: a ``trajectory.state.pd_ee_delta_pos.physx_cpu.h5`` file (see ``mepoly_maniskill``).
        obs_horizon, action_horizon: :math:`T_o`, :math:`T_a`.
        num_demos: the first this many episodes (all when ``None``).
        normalization: reuse these statistics (a resumed run); computed from the pairs' episodes
            otherwise.
    """
    from mepoly_maniskill.dataset import TrainingPairs, load_demonstrations

    episodes = load_demonstrations(demos, num_demos)
    pairs = TrainingPairs(episodes, obs_horizon=obs_horizon, action_horizon=action_horizon)
    if normalization is None:
        normalization = Normalization.from_arrays(pairs.observations, pairs.actions)
    obs, actions = (torch.from_numpy(array) for array in pairs.arrays())
    return PairTensors(normalization.normalize_obs(obs), normalization.normalize_actions(actions), normalization, len(episodes))
