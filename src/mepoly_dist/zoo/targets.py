r"""The paper's 2-D target manifolds and their Boltzmann densities (section 5.2).

Point clouds (4096 points, Gaussian noise 0.03, clipped to the square, as in the paper's
bandit code):

* lemniscate of Bernoulli, :math:`x = a\cos t/(1+\sin^2 t)`, :math:`y = a\sin t\cos t/(1+\sin^2 t)`, :math:`a = 0.9`;
* two moons: upper half circle of radius 0.55 centred at :math:`(-0.25, 0)` and lower
  half circle centred at :math:`(0.25, 0)`.

Manifold reward (eq. 15): :math:`r(x) = \exp(-d(x)^2 / 2\sigma^2)`, :math:`d` the distance to the
nearest target point, :math:`\sigma = 0.1`.  Under the MaxEnt objective with temperature
:math:`\alpha` the optimal policy is the Boltzmann density :math:`\propto \exp(r(x)/\alpha)`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["TARGETS", "target_points", "manifold_reward", "boltzmann_log_density"]

NUM_POINTS = 4096
NOISE = 0.03
SIGMA = 0.1


def _lemniscate(rng: np.random.Generator, n: int, a: float = 0.9) -> np.ndarray:
    t = rng.uniform(0.0, 2.0 * np.pi, size=n)
    denom = 1.0 + np.sin(t) ** 2
    return np.stack([a * np.cos(t) / denom, a * np.sin(t) * np.cos(t) / denom], axis=1)


def _two_moons(rng: np.random.Generator, n: int, radius: float = 0.55, offset: float = 0.25) -> np.ndarray:
    upper = rng.uniform(0.0, np.pi, size=n // 2)
    lower = rng.uniform(0.0, np.pi, size=n - n // 2)
    moon1 = radius * np.stack([np.cos(upper), np.sin(upper)], axis=1) + [-offset, 0.0]
    moon2 = radius * np.stack([np.cos(lower), -np.sin(lower)], axis=1) + [offset, 0.0]
    return np.concatenate([moon1, moon2])


TARGETS = {"lemniscate": _lemniscate, "two_moons": _two_moons}


def target_points(name: str, num_points: int = NUM_POINTS, noise: float = NOISE, seed: int = 0) -> np.ndarray:
    """The ``(num_points, 2)`` point cloud of a named target."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; expected one of {sorted(TARGETS)}")
    rng = np.random.default_rng(seed)
    points = TARGETS[name](rng, num_points)
    points = points + rng.normal(scale=noise, size=points.shape)
    return np.clip(points, -1.0, 1.0)


def manifold_reward(x: np.ndarray, points: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """Eq. 15: ``exp(-d^2 / (2 sigma^2))`` with ``d`` the distance to the nearest point."""
    distance, _ = cKDTree(points).query(np.asarray(x, dtype=np.float64).reshape(-1, 2))
    return np.exp(-(distance**2) / (2 * sigma**2)).reshape(np.shape(x)[:-1])


def boltzmann_log_density(x: np.ndarray, points: np.ndarray, alpha: float, sigma: float = SIGMA) -> np.ndarray:
    """Unnormalized log of the MaxEnt optimum, ``r(x) / alpha``."""
    return manifold_reward(x, points, sigma) / alpha
