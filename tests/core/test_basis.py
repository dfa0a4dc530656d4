"""Exponent sets and polynomial features, against scipy / numpy Legendre and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial import legendre as nplegendre
from scipy.special import comb

from mepoly_dist.testing import exponent_set_ref, features_ref, hessian_ref, jacobian_ref
from mepoly_dist import MePolyFamily
from mepoly_dist import basis as B

dims = st.integers(1, 3)
orders = st.integers(0, 6)


def _points(seed: int, n: int, dim: int, with_edges: bool = True) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, dim))
    if with_edges:  # the corners and edges of the cube are where Legendre polynomials are largest
        x[:2] = 1.0
        x[2:4] = -1.0
        x[4, 0] = 1.0
    return torch.from_numpy(x)


# --------------------------------------------------------------------------- exponent sets
@given(dim=st.integers(1, 5), order=st.integers(0, 9))
@settings(max_examples=60)
def test_exponent_set_size_uniqueness_and_graded_order(dim, order):
    exps = B.exponent_set(dim, order)
    assert exps.dtype == torch.long
    assert exps.shape == (comb(order + dim, dim, exact=True), dim)
    assert B.num_features(dim, order) == comb(order + dim, dim, exact=True)
    rows = [tuple(r) for r in exps.tolist()]
    assert len(set(rows)) == len(rows), "an exponent vector appears twice"
    assert set(rows) == exponent_set_ref(dim, order)
    assert rows[0] == (0,) * dim  # the constant feature comes first
    degrees = [sum(r) for r in rows]
    assert degrees == sorted(degrees), "exponents are not graded by total degree"
    # within one degree: itertools.combinations_with_replacement order, i.e. the exponent
    # vectors in strictly decreasing lexicographic order (x1^2, x1 x2, x2^2, ...)
    for a, b in zip(rows, rows[1:]):
        if sum(a) == sum(b):
            assert a > b


def test_exponent_set_documented_examples():
    assert B.exponent_set(2, 2).tolist() == [[0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 2]]
    assert B.exponent_set(3, 1).tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert B.exponent_set(1, 4).tolist() == [[0], [1], [2], [3], [4]]
    assert B.exponent_set(2, 0).tolist() == [[0, 0]]
    assert B.num_features(2, 14) == 120


def test_exponent_set_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dim"):
        B.exponent_set(0, 3)
    with pytest.raises(ValueError, match="order"):
        B.exponent_set(2, -1)
    with pytest.raises(ValueError, match="basis"):
        B.univariate_table(torch.zeros(3), 2, basis="chebyshev")


# --------------------------------------------------------------------------- Legendre values
@given(dim=dims, order=st.one_of(orders, st.just(14)), seed=st.integers(0, 2**31))
@settings(max_examples=40)
def test_legendre_features_equal_products_of_scipy_legendre(dim, order, seed):
    exps = B.exponent_set(dim, order)
    x = _points(seed, 64, dim)
    phi = B.features(x, exps, order, "legendre")
    assert phi.shape == (64, exps.shape[0])
    ref = features_ref(x.numpy(), exps.numpy(), "legendre")
    np.testing.assert_allclose(phi.numpy(), ref, rtol=0, atol=1e-12)


@given(order=st.integers(0, 20), seed=st.integers(0, 2**31))
@settings(max_examples=20)
def test_univariate_legendre_table(order, seed):
    x = torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, size=50))
    table = B.univariate_table(x, order, "legendre")
    assert table.shape == (50, order + 1)
    for k in range(order + 1):
        c = np.zeros(k + 1)
        c[k] = 1
        np.testing.assert_allclose(table[:, k].numpy(), nplegendre.legval(x.numpy(), c), atol=1e-12)


@pytest.mark.parametrize("order", [0, 1, 5, 14, 30])
def test_legendre_endpoint_values(order):
    ends = torch.tensor([1.0, -1.0], dtype=torch.float64)
    table = B.univariate_table(ends, order, "legendre")
    k = torch.arange(order + 1)
    torch.testing.assert_close(table[0], torch.ones(order + 1, dtype=torch.float64), rtol=0, atol=1e-13)  # P_k(1) = 1
    torch.testing.assert_close(table[1], (-1.0) ** k.double(), rtol=0, atol=1e-13)  # P_k(-1) = (-1)^k
    # |P_k| <= 1 on [-1, 1]
    inner = B.univariate_table(torch.linspace(-1, 1, 2001, dtype=torch.float64), order, "legendre")
    assert inner.abs().max() <= 1 + 1e-12


@given(dim=dims, order=orders)
@settings(max_examples=25)
def test_legendre_orthogonality_on_the_cube(dim, order):
    exps = B.exponent_set(dim, order)
    # numpy Gauss-Legendre with order + 1 points per axis is exact for degree 2 order + 1
    x1, w1 = nplegendre.leggauss(order + 1)
    nodes = np.stack(np.meshgrid(*([x1] * dim), indexing="ij"), -1).reshape(-1, dim)
    weights = np.prod(np.stack(np.meshgrid(*([w1] * dim), indexing="ij"), -1).reshape(-1, dim), -1)
    phi = B.features(torch.from_numpy(nodes), exps, order, "legendre").numpy()
    gram = phi.T @ (weights[:, None] * phi)
    expected = np.diag([np.prod([2.0 / (2 * k + 1) for k in row]) for row in exps.tolist()])
    np.testing.assert_allclose(gram, expected, rtol=0, atol=1e-12)


def test_legendre_orthogonality_order_14_independent_grid():
    exps = B.exponent_set(2, 14)
    x1, w1 = nplegendre.leggauss(40)  # a finer, independent grid than the minimal one
    nodes = np.stack(np.meshgrid(x1, x1, indexing="ij"), -1).reshape(-1, 2)
    weights = np.outer(w1, w1).reshape(-1)
    phi = B.features(torch.from_numpy(nodes), exps, 14).numpy()
    gram = phi.T @ (weights[:, None] * phi)
    expected = np.diag([(2.0 / (2 * a + 1)) * (2.0 / (2 * b + 1)) for a, b in exps.tolist()])
    np.testing.assert_allclose(gram, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- Jacobians
@given(dim=dims, order=st.one_of(orders, st.just(14)), basis=st.sampled_from(B.BASES), seed=st.integers(0, 2**31))
@settings(max_examples=40)
def test_features_and_jacobian_against_exact_derivatives_and_finite_differences(dim, order, basis, seed):
    exps = B.exponent_set(dim, order)
    x = _points(seed, 16, dim, with_edges=False) * 0.999
    phi, jac = B.features_and_jacobian(x, exps, order, basis)
    assert phi.shape == (16, exps.shape[0]) and jac.shape == (16, dim, exps.shape[0])
    np.testing.assert_allclose(phi.numpy(), features_ref(x.numpy(), exps.numpy(), basis), atol=1e-12)
    # numpy's exact polynomial derivatives (legder) with the product rule
    exact = jacobian_ref(x.numpy(), exps.numpy(), basis)
    scale = max(1.0, order**2)  # |P_k'| <= k (k + 1) / 2
    np.testing.assert_allclose(jac.numpy(), exact, rtol=0, atol=1e-11 * scale)
    # central finite differences of the features themselves
    h = 1e-6
    for d in range(dim):
        step = torch.zeros(dim, dtype=torch.float64)
        step[d] = h
        fd = (B.features(x + step, exps, order, basis) - B.features(x - step, exps, order, basis)) / (2 * h)
        np.testing.assert_allclose(jac[:, d].numpy(), fd.numpy(), rtol=0, atol=1e-9 + 1e-8 * max(1, order) ** 4)


@given(dim=st.integers(1, 4), order=st.one_of(orders, st.just(14)), basis=st.sampled_from(B.BASES), seed=st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_features_jacobian_hessian_against_exact_derivatives_and_autograd(dim, order, basis, seed):
    exps = B.exponent_set(dim, order)
    x = _points(seed, 6, dim, with_edges=dim > 1)
    phi, jac, hess = B.features_jacobian_hessian(x, exps, order, basis)
    F = exps.shape[0]
    assert phi.shape == (6, F) and jac.shape == (6, dim, F) and hess.shape == (6, dim, dim, F)
    scale = max(1.0, order**4)  # |P_k''| <= k^4 / 8 on [-1, 1]
    np.testing.assert_allclose(phi.numpy(), features_ref(x.numpy(), exps.numpy(), basis), atol=1e-12)
    np.testing.assert_allclose(jac.numpy(), jacobian_ref(x.numpy(), exps.numpy(), basis), rtol=0, atol=1e-11 * scale)
    # numpy's exact second derivatives (legder twice) with the product rule
    np.testing.assert_allclose(hess.numpy(), hessian_ref(x.numpy(), exps.numpy(), basis), rtol=0, atol=1e-11 * scale)
    # and autograd's Hessian of a random energy lambda . phi(x) at one point
    lam = torch.from_numpy(np.random.default_rng(seed).normal(size=F))
    energy = lambda point: (B.features(point, exps, order, basis) * lam).sum()
    auto = torch.autograd.functional.hessian(energy, x[0])
    np.testing.assert_allclose((hess[0] * lam).sum(-1).numpy(), auto.numpy(), rtol=1e-10, atol=1e-10 * scale)


def test_univariate_second_derivative_at_the_ends():
    # P_k''(1) = (k - 1) k (k + 1) (k + 2) / 8 and P_k''(-1) = (-1)^k P_k''(1)
    _, _, curvature = B.univariate_table(torch.tensor([1.0, -1.0], dtype=torch.float64), 9, derivative=2)
    at_one = [(k - 1) * k * (k + 1) * (k + 2) / 8 for k in range(10)]
    np.testing.assert_allclose(curvature[0].numpy(), at_one, atol=1e-12)
    np.testing.assert_allclose(curvature[1].numpy(), [(-1) ** k * v for k, v in enumerate(at_one)], atol=1e-12)
    with pytest.raises(ValueError, match="derivative"):
        B.univariate_table(torch.zeros(3), 4, derivative=3)


def test_jacobian_at_the_cube_corners():
    exps = B.exponent_set(2, 5)
    x = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    _, jac = B.features_and_jacobian(x, exps, 5)
    np.testing.assert_allclose(jac.numpy(), jacobian_ref(x.numpy(), exps.numpy()), atol=1e-12)
    # P_k'(1) = k (k + 1) / 2
    one = B.univariate_table(torch.ones(1, dtype=torch.float64), 9, derivative=True)[1][0]
    np.testing.assert_allclose(one.numpy(), [k * (k + 1) / 2 for k in range(10)], atol=1e-12)


def test_features_are_differentiable_by_autograd():
    exps = B.exponent_set(2, 6)
    x = _points(3, 5, 2, with_edges=False).requires_grad_(True)
    w = torch.randn(exps.shape[0], dtype=torch.float64)
    (g,) = torch.autograd.grad((B.features(x, exps, 6) * w).sum(), x)
    _, jac = B.features_and_jacobian(x.detach(), exps, 6)
    torch.testing.assert_close(g, (jac * w).sum(-1), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- monomials
@given(dim=dims, order=orders, seed=st.integers(0, 2**31))
@settings(max_examples=25)
def test_monomial_basis(dim, order, seed):
    exps = B.exponent_set(dim, order)
    x = _points(seed, 32, dim)
    phi = B.features(x, exps, order, "monomial")
    expected = np.prod(x.numpy()[:, None, :] ** exps.numpy()[None, :, :], axis=-1)
    np.testing.assert_allclose(phi.numpy(), expected, rtol=1e-13, atol=1e-14)
    table, slope = B.univariate_table(x[:, 0], order, "monomial", derivative=True)
    for k in range(order + 1):
        np.testing.assert_allclose(table[:, k].numpy(), x[:, 0].numpy() ** k, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(slope[:, k].numpy(), k * x[:, 0].numpy() ** max(k - 1, 0), rtol=1e-13, atol=1e-14)


def test_family_features_match_basis_and_check_shapes():
    fam = MePolyFamily(2, 4, basis="monomial", quadrature="gauss_legendre:5", dtype=torch.float64)
    x = _points(0, 7, 2)
    np.testing.assert_allclose(fam.features(x).numpy(), features_ref(x.numpy(), fam.exponents.numpy(), "monomial"), atol=1e-14)
    phi, jac = fam.features_and_jacobian(x)
    np.testing.assert_allclose(jac.numpy(), jacobian_ref(x.numpy(), fam.exponents.numpy(), "monomial"), atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        fam.features(torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        fam.features_and_jacobian(torch.zeros(5, 1, dtype=torch.float64))
    # batched point shapes broadcast through
    assert fam.features(torch.zeros(3, 4, 2, dtype=torch.float64)).shape == (3, 4, math.comb(6, 2))
