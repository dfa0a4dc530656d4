"""Accuracy of the package's default quadrature on sharp densities, against the independent
adaptive-cubature reference of ``_reference.adaptive_reference`` (numpy/scipy only).

The rows are ``lam = c * randn(F)`` (raw, not normalized): at c = 10..100 and order 14..20 the
density in D = 2 is a peak of width down to ~1e-5, usually at a face or corner of the square,
with energies in the thousands.  Targets (float64 everywhere, the family's default quadrature):

* D = 2, orders 2..20, c <= 100, and the paper's bandit targets (lemniscate, two moons at
  alpha = 0.2, 0.05, 0.01, order 14): ``|A - A_ref| <= 1e-6`` and ``|H - H_ref| <= 1e-5``;
* D = 3 (order 8), 4 (order 4), 5 (order 3) at c <= 10: both within 1e-4;
* the KL between sharp rows: within ``1e-5 * max(1, |KL|)`` of the reference's Bregman formula;
* a row the node budget cannot resolve is never silently wrong: a ``RuntimeWarning`` subclass
  names the number of unresolved rows and the estimated error, and ``validate_args=True``
  raises -- at the default budget (c = 1000, order 20) and with a deliberately tiny one
  (skipped until ``MePoly.quadrature_error`` and a budget parameter exist).

The accuracy tests record the package's RuntimeWarnings (the suite turns them into errors) so
that a failure reports the measured errors; they then also require that no warning was raised.

The first tests validate the reference itself: against a 400 x 400 tensor Gauss-Legendre rule
with scipy's ``eval_legendre`` features on smooth rows (exact to ~1e-13 there), and against
scipy.integrate's adaptive ``quad`` of ``quad`` on sharp rows.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import warnings

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

from accuracy_checks import TOL_A_2D, TOL_H_2D, assert_accurate, package_values
from mepoly_dist.testing import (
    adaptive_reference,
    energy_maxima_ref,
    graded_exponents_ref,
    nested_quad_ref_2d,
    tensor_gauss_legendre_ref,
)
from mepoly_dist.testing import _Energy as EnergyRef
from mepoly_dist import MePoly, MePolyFamily, basis

TOL_HIGH_D = 1e-4
ROWS_2D = 3
ORDERS_2D = (2, 5, 8, 14, 20)
SCALES_2D = (1, 3, 10, 30, 100)
HIGH_D = ((3, 8), (4, 4), (5, 3))
SCALES_HIGH_D = (1, 3, 10)
ROWS_HIGH_D = {3: 3, 4: 3, 5: 2}

#: targets the package does not meet yet (zoom onto one box, then global refinement of the tensor
#: rule up to the node budget; measured errors in benchmarks/results/accuracy/accuracy.md).  Rows there are inaccurate and
#: warned about (QuadratureWarning, tested below), or accurate but flagged by the conservative
#: estimate.  Strict: a target that starts to pass must be moved out of this list.
NOT_MET_2D = {(20, 100)}
NOT_MET_HIGH_D = {(3, 8), (4, 4), (5, 3)}  # every c in SCALES_HIGH_D
NOT_MET = pytest.mark.xfail(strict=True, reason="accuracy target not met (see NOT_MET_2D, NOT_MET_HIGH_D and the tests' comments)")


def _cases(pairs, not_met):
    return [pytest.param(*pair, marks=NOT_MET) if pair in not_met or pair[:2] in not_met else pair for pair in pairs]


def random_rows(dim: int, order: int, c: float, rows: int, seed: int = 0) -> np.ndarray:
    """``c * randn(rows, F)``, seeded by (seed, dim, order, c)."""
    rng = np.random.default_rng([seed, dim, order, int(round(1000 * c))])
    return c * rng.standard_normal((rows, math.comb(order + dim, dim)))


@functools.lru_cache(maxsize=None)
def _reference_rows(dim: int, order: int, c: float, rows: int, seed: int = 0):
    lams = random_rows(dim, order, c, rows, seed)
    refs = [adaptive_reference(lam, dim, order, moments=False) for lam in lams]
    return lams, np.array([r.A for r in refs]), np.array([r.H for r in refs])


# ----------------------------------------------------------------------------------------
# the reference itself
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim,order", [(1, 6), (2, 2), (2, 9), (3, 5), (5, 3)])
def test_graded_exponents_match_the_package(dim, order):
    np.testing.assert_array_equal(graded_exponents_ref(dim, order), basis.exponent_set(dim, order).numpy())


def test_reference_against_tensor_gauss_legendre_on_smooth_rows():
    """400 x 400 Gauss-Legendre with scipy features is exact to ~1e-13 for these smooth rows."""
    for order, c in [(2, 1.0), (5, 1.0), (8, 0.3), (8, 1.0)]:
        lams = random_rows(2, order, c, 2, seed=7)
        A_gl, H_gl, m_gl = tensor_gauss_legendre_ref(lams, 2, order, points=400)
        for k, lam in enumerate(lams):
            r = adaptive_reference(lam, 2, order)
            assert abs(r.A - A_gl[k]) < 1e-11, (order, c, r.A - A_gl[k])
            assert abs(r.H - H_gl[k]) < 1e-10, (order, c, r.H - H_gl[k])
            assert np.abs(r.moments - m_gl[k]).max() < 1e-10, (order, c)
    # D = 3 on a 60^3 rule
    lam = random_rows(3, 4, 1.0, 1, seed=7)[0]
    A_gl, H_gl, m_gl = tensor_gauss_legendre_ref(lam[None], 3, 4, points=60)
    r = adaptive_reference(lam, 3, 4)
    assert abs(r.A - A_gl[0]) < 1e-8 and abs(r.H - H_gl[0]) < 1e-8 and np.abs(r.moments - m_gl[0]).max() < 1e-8


@pytest.mark.parametrize("order,c", [(8, 30.0), (14, 100.0)])
def test_reference_against_scipy_nested_quad_on_sharp_rows(order, c):
    """QUADPACK's adaptive quad of quad, broken at the energy maxima and graded towards them."""
    lam = random_rows(2, order, c, 1, seed=1)[0]
    r = adaptive_reference(lam, 2, order, moments=False)
    assert r.H < -5.0  # sharp: the density's width is well below 1e-2
    points, energies = energy_maxima_ref(EnergyRef(lam, graded_exponents_ref(2, order), order))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # QUADPACK's IntegrationWarning: not converged
        A_q, H_q = nested_quad_ref_2d(lam, order, points=points[energies > energies[0] - 30.0])
    assert abs(r.A - A_q) < 1e-9, (r.A, A_q)
    assert abs(r.H - H_q) < 1e-9, (r.H, H_q)


def test_reference_resolves_a_ridge_along_a_face():
    """A peak in a thin layer at the face x = 1 that stretches along it (D = 2, order 14, c = 100):
    the reference once missed 30% of its mass in boxes whose panel nodes never reached the layer.
    Against Gauss-Legendre on a box around the peak, with numpy's Legendre Vandermonde matrices."""
    order = 14
    lam = random_rows(2, order, 100.0, 8)[3]
    exps = graded_exponents_ref(2, order)
    coef = np.zeros((order + 1, order + 1))
    coef[exps[:, 0], exps[:, 1]] = lam
    (x0, x1), (y0, y1), n = (0.9, 1.0), (-1.0, -0.6), 800
    x, w = np.polynomial.legendre.leggauss(n)
    xs, ys = (x0 + x1) / 2 + (x1 - x0) / 2 * x, (y0 + y1) / 2 + (y1 - y0) / 2 * x
    energy = np.polynomial.legendre.legvander(xs, order) @ coef @ np.polynomial.legendre.legvander(ys, order).T
    s = energy + np.log(w * (x1 - x0) / 2)[:, None] + np.log(w * (y1 - y0) / 2)[None, :]
    box = s.max() + math.log(np.exp(s - s.max()).sum())
    assert abs(adaptive_reference(lam, 2, order, moments=False).A - box) <= 1e-9


# ----------------------------------------------------------------------------------------
# the package against the reference
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("order, c", _cases([(o, c) for o in ORDERS_2D for c in SCALES_2D], NOT_MET_2D))
def test_log_partition_and_entropy_2d(order, c):
    lams, A_ref, H_ref = _reference_rows(2, order, float(c), ROWS_2D)
    A, H, messages = package_values(lams, 2, order)
    assert_accurate(A, H, A_ref, H_ref, TOL_A_2D, TOL_H_2D, messages)


@pytest.mark.parametrize("dim, order, c", _cases([(d, o, c) for d, o in HIGH_D for c in SCALES_HIGH_D], NOT_MET_HIGH_D))
def test_log_partition_and_entropy_high_dim(dim, order, c):
    lams, A_ref, H_ref = _reference_rows(dim, order, float(c), ROWS_HIGH_D[dim])
    A, H, messages = package_values(lams, dim, order)
    assert_accurate(A, H, A_ref, H_ref, TOL_HIGH_D, TOL_HIGH_D, messages)


def test_kl_between_sharp_rows():
    """KL(p||q) = A_q - A_p - (lam_q - lam_p) . E_p[phi] against the reference's A and E_p[phi]:
    a nearby pair (q a perturbation of p) and an unrelated pair, D = 2, order 14, c = 30."""
    order = 14
    base = random_rows(2, order, 30.0, 2, seed=11)
    rng = np.random.default_rng(12)
    lam_p = np.stack([base[0], base[0]])
    lam_q = np.stack([base[0] + 3.0 * rng.standard_normal(base.shape[1]), base[1]])
    ref = []
    for lp, lq in zip(lam_p, lam_q):
        p = adaptive_reference(lp, 2, order)
        q = adaptive_reference(lq, 2, order, moments=False)
        ref.append(q.A - p.A - float((lq - lp) @ p.moments))
    ref = np.array(ref)
    family = MePolyFamily(2, order, dtype=torch.float64)
    with torch.no_grad(), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        kl = kl_divergence(MePoly(torch.from_numpy(lam_p), family), MePoly(torch.from_numpy(lam_q), family)).numpy()
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    err = np.abs(kl - ref)
    assert np.all(err <= 1e-5 * np.maximum(1.0, np.abs(ref))), f"KL {kl} vs reference {ref}: |error| {err}; warnings: {messages}"
    assert not messages, messages


# ----------------------------------------------------------------------------------------
# rows the node budget cannot resolve
# ----------------------------------------------------------------------------------------
#: names under which the adaptive quadrature's per-row node budget may be exposed
BUDGET_PARAMETERS = ("max_nodes", "node_budget", "max_nodes_per_row", "quadrature_budget", "budget")
TINY_BUDGET = 256


def _family_with_budget(dim: int, order: int, budget: int):
    """A float64 family whose per-row node budget is ``budget``, or None if there is no such parameter."""
    params = inspect.signature(MePolyFamily.__init__).parameters
    for name in BUDGET_PARAMETERS:
        if name in params:
            return MePolyFamily(dim, order, dtype=torch.float64, **{name: budget})
    return None


def _numbers(text: str):
    return [float(m) for m in re.findall(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?", text)]


def _assert_flagged(messages, count: int, estimate: float):
    """Some RuntimeWarning names ``count`` rows and an error within 10x of ``estimate``."""
    names_count = re.compile(rf"\b{count}\b(?:\s+of\s+\d+)?\s+(?:\w+\s+)?rows?\b")  # "1 row", "1 of 2 rows", "1 unresolved row"
    assert any(
        names_count.search(m) and any(0.1 * estimate <= v <= 10.0 * estimate for v in _numbers(m)) for m in messages
    ), f"no RuntimeWarning names {count} unresolved row(s) and the estimated error {estimate:.2e}: {messages}"


def _assert_raises_under_validate_args(lams, family):
    """``validate_args=True`` raises a real exception (not the warning turned into an error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            strict = MePoly(lams, family, validate_args=True)
            strict.log_partition
            strict.entropy()
        assert not isinstance(info.value, Warning), f"raised the warning itself: {info.value!r}"


def test_rows_beyond_the_default_budget_are_never_silently_wrong():
    """c = 1000, order 20: peaks of width ~1e-6 at the faces, energies ~1e4.  Every row is either
    within the D = 2 target or counted in a RuntimeWarning with an honest estimate, and
    ``validate_args=True`` raises when any is not."""
    if not hasattr(MePoly, "quadrature_error"):
        pytest.skip("MePoly.quadrature_error (per-row estimated |log Z error|) does not exist yet")
    order = 20
    lams = np.concatenate([random_rows(2, order, 0.1, 1, seed=5), random_rows(2, order, 1000.0, 2, seed=5)])
    ref = [adaptive_reference(lam, 2, order, moments=False) for lam in lams]
    family = MePolyFamily(2, order, dtype=torch.float64)
    with torch.no_grad(), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dist = MePoly(torch.from_numpy(lams), family)
        A = dist.log_partition.numpy()
        dist.entropy()
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    estimate = torch.as_tensor(dist.quadrature_error).double().numpy()
    errA = np.abs(A - np.array([r.A for r in ref]))
    wrong = errA > TOL_A_2D
    assert not wrong[0], f"smooth row off by {errA[0]:.2e}"
    if wrong.any():
        assert np.all(estimate[wrong] >= 0.1 * errA[wrong]), f"estimates {estimate} below the errors {errA} / 10"
        _assert_flagged(messages, int(wrong.sum()), float(estimate[wrong].max()))
        _assert_raises_under_validate_args(torch.from_numpy(lams), family)
    else:
        assert not messages, f"accurate rows flagged (errors {errA}): {messages}"


def test_unresolved_rows_warn_and_raise():
    if not hasattr(MePoly, "quadrature_error"):
        pytest.skip("MePoly.quadrature_error (per-row estimated |log Z error|) does not exist yet")
    order = 8
    family = _family_with_budget(2, order, TINY_BUDGET)
    if family is None:
        pytest.skip(f"MePolyFamily has no node-budget parameter (looked for {', '.join(BUDGET_PARAMETERS)})")
    smooth = random_rows(2, order, 0.1, 1, seed=3)[0]  # resolved by any rule with 256 nodes
    sharp = random_rows(2, order, 100.0, 1, seed=3)[0]  # a peak of width ~1e-5: not with 256
    lams = torch.from_numpy(np.stack([smooth, sharp]))
    ref = [adaptive_reference(lam, 2, order, moments=False) for lam in (smooth, sharp)]

    with pytest.warns(RuntimeWarning) as record:
        dist = MePoly(lams, family)
        A = dist.log_partition.detach().numpy()
        dist.entropy()
    estimate = torch.as_tensor(dist.quadrature_error).detach().double().numpy()
    assert estimate.shape == (2,), f"quadrature_error must have shape batch_shape, got {estimate.shape}"
    errA = np.abs(A - np.array([r.A for r in ref]))
    # the smooth row is resolved and says so; the sharp row is flagged, with an honest estimate
    assert errA[0] <= TOL_A_2D and estimate[0] <= TOL_A_2D, (errA, estimate)
    assert estimate[1] > TOL_A_2D, f"unresolved row not flagged: estimate {estimate[1]:.2e}, actual error {errA[1]:.2e}"
    assert errA[1] <= max(10.0 * estimate[1], TOL_A_2D), f"estimate {estimate[1]:.2e} < actual error {errA[1]:.2e} / 10"
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    _assert_flagged(messages, 1, float(estimate[1]))
    _assert_raises_under_validate_args(lams, family)
    # ... and only for unresolved rows
    fine = MePoly(lams[:1], family, validate_args=True)
    assert abs(float(fine.log_partition[0]) - ref[0].A) <= TOL_A_2D
