"""Metrics for 2-D action distributions against the paper's Boltzmann targets (section 5.2).

* ``tv_distance``: total variation between a sample histogram (32 x 32 cells on the
  square) and the target's cell masses.
* ``coverage``: fraction of target points with a sample within ``radius`` (0.05).
* ``mean_reward``: the manifold reward (eq. 15) averaged over samples.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre
from scipy.spatial import cKDTree

from .targets import boltzmann_log_density, manifold_reward

__all__ = ["cell_masses", "histogram_masses", "tv_distance", "coverage", "mean_reward", "target_cell_masses"]


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
