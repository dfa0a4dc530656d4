"""The normalizer on the paper's bandit targets: the order-14 projections of the lemniscate and
two-moons rewards (section 5.2) at temperatures down to alpha = 0.01, against the adaptive float64
reference cubature (:mod:`mepoly_dist.testing`), at the 2-D tolerances of the core accuracy tests."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from accuracy_checks import TOL_A_2D, TOL_H_2D, assert_accurate, package_values
from mepoly_dist import MePolyFamily
from mepoly_dist.testing import adaptive_reference

ALPHAS = (0.2, 0.05, 0.01)
TARGET_NAMES = ("lemniscate", "two_moons")


@functools.lru_cache(maxsize=None)
def _bandit_unit_projection(name: str) -> np.ndarray:
    """The order-14 projection of the target's reward r(x) (alpha = 1); the projection is
    linear, so the natural parameters at temperature alpha are this over alpha."""
    from mepoly_dist.fit import project_energy
    from mepoly_dist.zoo.targets import boltzmann_log_density, target_points

    points = target_points(name, seed=0)
    family = MePolyFamily(2, 14, quadrature="gauss_legendre:16", dtype=torch.float64)  # for its features only
    return project_energy(lambda x: boltzmann_log_density(x, points, 1.0), family).numpy()


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", TARGET_NAMES)
def test_bandit_target_projections(name, alpha):
    lam = _bandit_unit_projection(name) / alpha
    r = adaptive_reference(lam, 2, 14, moments=False)
    A, H, messages = package_values(lam[None], 2, 14)
    assert_accurate(A, H, np.array([r.A]), np.array([r.H]), TOL_A_2D, TOL_H_2D, messages)
