r"""Metrics of the paper's experiments: bandit action distributions (section 5.2) and Smooth
World goal usage (section 5.1), for MePoly and any other SB3 policy.

Bandit, against the Boltzmann target :math:`\propto \exp(r(a)/\alpha)` (the MaxEnt optimum
for entropy coefficient :math:`\alpha`):

* ``tv_distance``: total variation between the policy's action histogram (32 x 32 cells on
  the square, :math:`10^5` samples) and the target's cell masses;
* ``coverage``: fraction of target points with a policy sample within ``radius`` (0.05; 4096
  samples);
* ``mean_reward``: the manifold reward (eq. 15) averaged over samples.

Smooth World, from a layout's fixed start states: success rate, the goal region each episode
ends in (counts), and the normalized goal entropy :math:`H(\text{goal}) / \log K` over the
layout's ``K`` goal regions (1 = all goals used equally); and over the whole world, the policy's
drift field :math:`\mathbb{E}_{a \sim \pi(\cdot|s)}[\operatorname{clip}(a, -1, 1)]` at every free
cell (``smooth_world_drift``): the mean velocity that the kinematics integrate, whose length
tells a decisive policy (up to 1 along an axis, :math:`\sqrt 2` on a diagonal) from a diffuse or
evenly split one (near 0).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre
from scipy.spatial import cKDTree

from .targets import boltzmann_log_density, manifold_reward

__all__ = ['histogram_masses', 'cell_masses', 'target_cell_masses', 'tv_distance', 'coverage', 'mean_reward', 'bandit_metrics', 'goal_entropy']


def histogram_masses(samples: np.ndarray, bins: int = 32) -> np.ndarray:
    """Fraction of ``samples`` (``(n, 2)`` in the square) in each of ``bins x bins`` cells."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"expected samples of shape (n, 2), got {samples.shape}")
    counts, _, _ = np.histogram2d(samples[:, 0], samples[:, 1], bins=bins, range=[[-1, 1], [-1, 1]])
    return counts / samples.shape[0]


def cell_masses(log_density, bins: int = 32, points: int = 8) -> np.ndarray:
    """Cell masses of a normalized density on ``bins x bins`` cells, by a ``points x points``
    Gauss-Legendre rule in each cell (``log_density`` maps ``(n, 2)`` to ``(n,)``)."""
    x, w = legendre.leggauss(points)
    h = 1.0 / bins
    centers = -1.0 + h * (2 * np.arange(bins) + 1)
    xs = (centers[:, None] + h * x[None]).reshape(-1)
    ws = np.tile(w * h, bins)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    logp = np.asarray(log_density(np.stack([gx.ravel(), gy.ravel()], -1))).reshape(gx.shape)
    weights = np.outer(ws, ws) * np.exp(logp - logp.max())
    masses = weights.reshape(bins, points, bins, points).sum(axis=(1, 3))
    return masses / masses.sum()


def target_cell_masses(points: np.ndarray, alpha: float, bins: int = 32) -> np.ndarray:
    """Cell masses of the Boltzmann target ``exp(r / alpha)``."""
    return cell_masses(lambda x: boltzmann_log_density(x, points, alpha), bins)


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation ``0.5 * sum |p - q|`` between two arrays of cell masses."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def coverage(samples: np.ndarray, points: np.ndarray, radius: float = 0.05) -> float:
    """Fraction of target ``points`` with at least one sample within ``radius``."""
    distance, _ = cKDTree(np.asarray(samples, dtype=np.float64)).query(points)
    return float(np.mean(distance <= radius))


def mean_reward(samples: np.ndarray, points: np.ndarray) -> float:
    return float(np.mean(manifold_reward(samples, points)))


def bandit_metrics(samples: np.ndarray, points: np.ndarray, alpha: float, coverage_samples: int = 4096) -> dict:
    """TV to the Boltzmann target, coverage (first ``coverage_samples`` samples) and mean reward."""
    samples = np.asarray(samples, dtype=np.float64)
    return {
        "tv_to_target": tv_distance(histogram_masses(samples), target_cell_masses(points, alpha)),
        "coverage": coverage(samples[:coverage_samples], points),
        "mean_reward": mean_reward(samples, points),
        "num_samples": int(samples.shape[0]),
    }


def goal_entropy(counts: np.ndarray) -> float:
    r"""Normalized entropy :math:`H(p)/\log K` of goal counts over ``K = len(counts)`` goals (0 when K = 1)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size < 2 or counts.sum() == 0:
        return 0.0
    p = counts[counts > 0] / counts.sum()
    return float((p * np.log(1.0 / p)).sum() / np.log(counts.size))  # log(1/p), not -log(p): one goal gives 0.0, not -0.0
