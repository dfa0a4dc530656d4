"""The mode search's building blocks against independent computations (numpy's Legendre
derivatives, torch's max-pool); the mode itself is tested in test_distribution.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mepoly_dist.testing import features_ref, hessian_ref, jacobian_ref
from mepoly_dist import MePolyFamily
from mepoly_dist import mode as M


@given(dim=st.integers(1, 4), order=st.sampled_from([0, 1, 2, 5, 14]), basis=st.sampled_from(["legendre", "monomial"]), seed=st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_sum_factorized_energy_gradient_and_hessian_against_numpy(dim, order, basis, seed):
    if dim > 2 and order > 5:
        order = 5  # keep (K^D) small
    fam = MePolyFamily(dim, order, basis=basis, quadrature=f"gauss_legendre:{order + 1}").to(torch.float64)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(5, dim))
    x[0] = 1.0  # a corner: the ends of every axis
    lam = rng.normal(size=(5, fam.num_params))
    coef = M._dense_coefficients(torch.from_numpy(lam), fam)
    energy, grad, hess, rounding = M._energy_grad_hessian(torch.from_numpy(x), coef, fam)
    exps = fam.exponents.numpy()
    scale = max(1.0, order**4)
    phi = features_ref(x, exps, basis)
    np.testing.assert_allclose(energy.numpy(), (phi * lam).sum(-1), rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(grad.numpy(), (jacobian_ref(x, exps, basis) * lam[:, None]).sum(-1), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(hess.numpy(), (hessian_ref(x, exps, basis) * lam[:, None, None]).sum(-1), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(rounding.numpy(), 64 * np.finfo(np.float64).eps * np.abs(phi * lam).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(M._energy(torch.from_numpy(x), coef, fam).numpy(), (phi * lam).sum(-1), rtol=0, atol=1e-11 * scale)


@pytest.mark.parametrize("shape", [(3, 7), (3, 7, 6), (2, 5, 4, 3)])
def test_neighbourhood_max_equals_max_pool(shape):
    grid = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    pool = {2: torch.nn.functional.max_pool1d, 3: torch.nn.functional.max_pool2d, 4: torch.nn.functional.max_pool3d}[len(shape)]
    expected = pool(grid[:, None], 3, stride=1, padding=1)[:, 0]
    assert torch.equal(M._neighbourhood_max(grid), expected)


def test_candidates_sit_in_different_basins():
    # two separated peaks of equal height in 1-D: the two best grid points overall are neighbours
    # on one peak, the two best local maxima are the two peaks
    fam = MePolyFamily(1, 4, quadrature="gauss_legendre:16").to(torch.float64)
    x = torch.linspace(-1, 1, 201, dtype=torch.float64)
    target = -20 * (x**2 - 0.25) ** 2  # maxima at +-0.5
    phi = fam.features(x[:, None])
    lam = torch.linalg.lstsq(phi, target[:, None]).solution.t()
    starts = M._coarse_candidates(lam, fam, 2)[0, :, 0].sort().values
    np.testing.assert_allclose(starts.numpy(), [-0.5, 0.5], atol=0.05)


def test_search_grid_grows_with_the_order():
    assert M.search_points_per_axis(2, 8) == 25 and M.search_points_per_axis(2, 14) == 43
    assert M.search_points_per_axis(2, 1) == M.SEARCH_POINTS_RANGE[2][0]
    assert M.search_points_per_axis(2, 100) == M.SEARCH_POINTS_RANGE[2][1]
