"""Quadrature rules: exactness, error bounds on closed-form integrals, weights, nodes, spec parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import roots_legendre

from mepoly_dist.testing import exact_exp_linear_integral
from mepoly_dist import CompositeGaussLegendreRule, GaussLegendreRule, QuadratureRule, SobolRule, TrapezoidRule, make_rule
from mepoly_dist.quadrature import default_rule


def integrate(rule: QuadratureRule, f) -> float:
    """sum_i w_i f(x_i), with f a numpy function of (N, D) nodes."""
    w = np.exp(rule.log_weights.numpy())
    return float(np.sum(w * f(rule.nodes.numpy())))


# --------------------------------------------------------------------------- error bounds
def _log_gl_constant(m: int) -> float:
    # Gauss-Legendre on an interval of length L: error = L^(2m+1) (m!)^4 / ((2m+1) ((2m)!)^3) f^(2m)(xi)
    return 4 * math.lgamma(m + 1) - math.log(2 * m + 1) - 3 * math.lgamma(2 * m + 1)


def _bound_1d(rule_kind: str, size, c: float) -> float:
    """Rigorous bound of |Q - I| for the 1-D integral of exp(c x) over [-1, 1]."""
    a = abs(c)
    if a == 0:
        return 0.0
    if rule_kind == "gauss_legendre":
        m = size
        return math.exp((2 * m + 1) * math.log(2.0) + _log_gl_constant(m) + 2 * m * math.log(a) + a)
    if rule_kind == "composite_gauss_legendre":
        panels, m = size
        length = 2.0 / panels
        return panels * math.exp((2 * m + 1) * math.log(length) + _log_gl_constant(m) + 2 * m * math.log(a) + a)
    if rule_kind == "trapezoid":
        h = 2.0 / (size - 1)
        return 2.0 * h * h / 12.0 * a * a * math.exp(a)
    raise AssertionError(rule_kind)


def _product_bound(exacts, bounds) -> float:
    # |prod (I_d + e_d) - prod I_d| <= prod (I_d + E_d) - prod I_d  for I_d > 0
    return float(np.prod(np.add(exacts, bounds)) - np.prod(exacts))


rule_kinds = st.sampled_from(["gauss_legendre", "composite_gauss_legendre", "trapezoid"])


@given(dim=st.integers(1, 3), kind=rule_kinds, scale=st.floats(0.1, 5.0), data=st.data())
@settings(max_examples=80)
def test_tensor_rules_integrate_exp_of_linear_within_their_error_bound(dim, kind, scale, data):
    if kind == "gauss_legendre":
        size = data.draw(st.integers(1, 16 if dim < 3 else 10), label="points")
        rule = GaussLegendreRule(dim, size)
    elif kind == "composite_gauss_legendre":
        size = (data.draw(st.integers(1, 6), label="panels"), data.draw(st.integers(1, 5), label="points"))
        rule = CompositeGaussLegendreRule(dim, *size)
    else:
        size = data.draw(st.integers(2, 40 if dim < 3 else 20), label="points")
        rule = TrapezoidRule(dim, size)
    direction = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=dim, max_size=dim), label="direction"))
    c = scale * direction
    exact = exact_exp_linear_integral(c)
    approx = integrate(rule, lambda x: np.exp(x @ c))
    exact_1d = [exact_exp_linear_integral([cd]) for cd in c]
    bound = _product_bound(exact_1d, [_bound_1d(kind, size, cd) for cd in c])
    assert abs(approx - exact) <= bound + 1e-13 * exact
    if kind != "trapezoid" and bound < 1e-13 * exact:
        assert approx == pytest.approx(exact, rel=1e-13)


@given(dim=st.integers(1, 3), points=st.integers(1, 10), data=st.data())
@settings(max_examples=40)
def test_gauss_legendre_is_exact_for_degree_2m_minus_1(dim, points, data):
    powers = data.draw(st.lists(st.integers(0, 2 * points - 1), min_size=dim, max_size=dim))
    panels = data.draw(st.integers(1, 4))
    exact = np.prod([(1 - (-1) ** (k + 1)) / (k + 1) for k in powers])
    f = lambda x: np.prod(x ** np.array(powers), axis=-1)
    for rule in (GaussLegendreRule(dim, points), CompositeGaussLegendreRule(dim, panels, points)):
        assert integrate(rule, f) == pytest.approx(exact, abs=1e-13 * 2**dim)
    # and not beyond: x^(2m) is integrated with the known positive error
    rule = GaussLegendreRule(1, points)
    k = 2 * points
    assert integrate(rule, lambda x: x[:, 0] ** k) < 2.0 / (k + 1) - 1e-12


@given(dim=st.integers(1, 3), points=st.integers(2, 30))
@settings(max_examples=20)
def test_trapezoid_exact_for_multilinear_and_second_order(dim, points):
    rule = TrapezoidRule(dim, points)
    # multilinear functions are integrated exactly
    f = lambda x: 1.0 + 0.5 * x[:, 0] + np.prod(x, axis=-1) + 3 * x[:, -1]
    assert integrate(rule, f) == pytest.approx(2.0**dim, abs=1e-12)
    # x^2: the trapezoid error is exactly h^2 / 3 * 2^(dim-1)  (error of (b-a) h^2 / 12 f'')
    h = 2.0 / (points - 1)
    approx = integrate(rule, lambda x: x[:, 0] ** 2)
    assert approx - 2.0 ** (dim - 1) * 2.0 / 3.0 == pytest.approx(2.0 ** (dim - 1) * h * h / 3.0, rel=1e-9, abs=1e-13)


def test_trapezoid_converges_at_second_order():
    c = np.array([1.3, -0.7])
    exact = exact_exp_linear_integral(c)
    errors = [abs(integrate(TrapezoidRule(2, n + 1), lambda x: np.exp(x @ c)) - exact) for n in (16, 32, 64)]
    for coarse, fine in zip(errors, errors[1:]):
        assert coarse / fine == pytest.approx(4.0, rel=0.02)


def test_rules_converge_on_a_sharp_peak():
    # 1-D narrow Gaussian bump exp(-x^2 / (2 s^2)), s = 0.02; exact integral by erf
    s = 0.02
    exact = s * math.sqrt(2 * math.pi) * math.erf(1 / (s * math.sqrt(2)))
    f = lambda x: np.exp(-x[:, 0] ** 2 / (2 * s * s))
    assert integrate(CompositeGaussLegendreRule(1, 100, 6), f) == pytest.approx(exact, rel=1e-12)
    assert integrate(CompositeGaussLegendreRule(1, 33, 8), f) == pytest.approx(exact, rel=1e-8)
    assert integrate(GaussLegendreRule(1, 256), f) == pytest.approx(exact, rel=1e-12)
    assert integrate(TrapezoidRule(1, 1001), f) == pytest.approx(exact, rel=1e-12)  # spectral for a decayed bump
    # a coarse rule misses it badly: the comparison above is meaningful
    assert integrate(GaussLegendreRule(1, 24), f) != pytest.approx(exact, rel=0.5)


@given(dim=st.integers(1, 3), m=st.integers(6, 12), seed=st.integers(0, 50))
@settings(max_examples=20)
def test_sobol_rule_is_a_stratified_net_and_integrates_smooth_functions(dim, m, seed):
    n = 2**m
    rule = SobolRule(dim, n, seed=seed)
    assert rule.num_nodes == n and rule.nodes.shape == (n, dim)
    np.testing.assert_allclose(rule.log_weights.numpy(), dim * math.log(2) - math.log(n), rtol=0, atol=1e-12)
    x = rule.nodes.numpy()
    assert np.all(np.abs(x) <= 1)
    # a scrambled base-2 Sobol' set of 2^m points has exactly one point in each of the 2^m
    # equal intervals of every coordinate (a (0, m, 1)-net in each one-dimensional projection)
    for d in range(dim):
        cells = np.floor((x[:, d] + 1) / 2 * n).astype(int)
        assert sorted(cells.tolist()) == list(range(n))
    # randomized QMC on a smooth integrand: far better than Monte Carlo's n^-1/2
    c = np.linspace(0.7, -0.4, dim)
    exact = exact_exp_linear_integral(c)
    assert integrate(rule, lambda y: np.exp(y @ c)) == pytest.approx(exact, rel=20.0 / n)


def test_sobol_seed_changes_the_scrambling_reproducibly():
    a, b, a2 = SobolRule(2, 256, seed=0), SobolRule(2, 256, seed=1), SobolRule(2, 256, seed=0)
    assert not torch.equal(a.nodes, b.nodes)
    assert torch.equal(a.nodes, a2.nodes)
    assert make_rule("sobol:256:1", 2).spec == "sobol:256:1"
    assert torch.equal(make_rule("sobol:256:1", 2).nodes, b.nodes)


# --------------------------------------------------------------------------- weights and nodes
ALL_SPECS = [
    "trapezoid:2",
    "trapezoid:17",
    "gauss_legendre:1",
    "gauss_legendre:9",
    "composite_gauss_legendre:3x2",
    "composite_gauss_legendre:5",
    "sobol:64",
    "sobol:128:3",
    "default",
]


@pytest.mark.parametrize("spec", ALL_SPECS)
@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_weights_sum_to_cube_volume_and_nodes_lie_in_the_cube(spec, dim):
    rule = make_rule(spec, dim)
    assert rule.dim == dim
    assert rule.nodes.dtype == torch.float64 and rule.log_weights.dtype == torch.float64
    assert rule.nodes.shape == (rule.num_nodes, dim) and rule.log_weights.shape == (rule.num_nodes,)
    assert math.fsum(np.exp(rule.log_weights.numpy())) == pytest.approx(2.0**dim, rel=1e-13)
    assert torch.isfinite(rule.log_weights).all()
    assert rule.nodes.abs().max() <= 1.0
    # every rule integrates constants exactly (positive weights summing to the volume)
    assert integrate(rule, lambda x: np.full(len(x), 3.0)) == pytest.approx(3.0 * 2**dim, rel=1e-13)


@pytest.mark.parametrize("points", [1, 2, 5, 20, 64])
def test_gauss_legendre_nodes_and_weights_match_scipy(points):
    rule = GaussLegendreRule(1, points)
    x, w = roots_legendre(points)
    order = np.argsort(rule.nodes[:, 0].numpy())
    np.testing.assert_allclose(rule.nodes[order, 0].numpy(), np.sort(x), atol=1e-14)
    np.testing.assert_allclose(np.exp(rule.log_weights.numpy())[order], w[np.argsort(x)], rtol=1e-11)
    assert rule.nodes.abs().max() < 1.0  # interior nodes
    # a 2-D rule is the tensor product
    rule2 = GaussLegendreRule(2, points)
    assert rule2.num_nodes == points**2
    w2 = np.exp(rule2.log_weights.numpy())
    assert sorted(w2.tolist()) == pytest.approx(sorted(np.outer(w, w).ravel().tolist()), rel=1e-12)


def test_trapezoid_nodes_and_weights():
    rule = TrapezoidRule(1, 5)
    np.testing.assert_allclose(rule.nodes[:, 0].numpy(), [-1, -0.5, 0, 0.5, 1], atol=1e-15)
    np.testing.assert_allclose(np.exp(rule.log_weights.numpy()), [0.25, 0.5, 0.5, 0.5, 0.25], rtol=1e-14)


def test_composite_nodes_stay_inside_their_panels():
    rule = CompositeGaussLegendreRule(1, panels=4, points=3)
    x = np.sort(rule.nodes[:, 0].numpy())
    panel = np.floor((x + 1) / 0.5).astype(int)
    assert np.bincount(panel).tolist() == [3, 3, 3, 3]


def test_custom_rule_weights_are_renormalized():
    nodes = np.array([[-0.5], [0.25], [0.9]])
    rule = QuadratureRule(nodes, np.array([1.0, 2.0, 1.0]))
    np.testing.assert_allclose(np.exp(rule.log_weights.numpy()), [0.5, 1.0, 0.5], rtol=1e-14)
    with pytest.raises(ValueError, match="positive"):
        QuadratureRule(nodes, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="cube"):
        QuadratureRule(np.array([[-0.5], [1.5]]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        QuadratureRule(nodes, np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        QuadratureRule(nodes[:, 0], np.array([1.0, 1.0, 1.0]))


# --------------------------------------------------------------------------- make_rule
@pytest.mark.parametrize(
    "spec, cls, attrs, num_nodes",
    [
        ("gauss_legendre:12", GaussLegendreRule, {"points": 12}, 144),
        ("trapezoid:33", TrapezoidRule, {"points": 33}, 33 * 33),
        ("composite_gauss_legendre:8x3", CompositeGaussLegendreRule, {"panels": 8, "points": 3}, 24 * 24),
        ("composite_gauss_legendre:8", CompositeGaussLegendreRule, {"panels": 8, "points": 4}, 32 * 32),
        ("sobol:512", SobolRule, {"seed": 0}, 512),
        ("sobol:512:9", SobolRule, {"seed": 9}, 512),
        ("gauss_legendre", GaussLegendreRule, {}, None),
        ("trapezoid", TrapezoidRule, {}, None),
    ],
)
def test_make_rule_parses_specs(spec, cls, attrs, num_nodes):
    rule = make_rule(spec, 2)
    assert type(rule) is cls and rule.dim == 2
    for key, value in attrs.items():
        assert getattr(rule, key) == value
    if num_nodes is not None:
        assert rule.num_nodes == num_nodes
    # the spec round-trips to an equal rule with identical nodes
    again = make_rule(rule.spec, 2)
    assert again == rule and hash(again) == hash(rule)
    assert torch.equal(again.nodes, rule.nodes) and torch.equal(again.log_weights, rule.log_weights)


@pytest.mark.parametrize("dim", range(1, 9))
def test_default_rules(dim):
    rule = make_rule(None, dim)
    assert rule.dim == dim
    assert rule == make_rule("default", dim) == default_rule(dim)
    assert rule.num_nodes <= 10_000  # "at most about 8,192 nodes"
    assert math.fsum(np.exp(rule.log_weights.numpy())) == pytest.approx(2.0**dim, rel=1e-13)
    c = np.linspace(0.8, -0.5, dim)
    exact = exact_exp_linear_integral(c)
    assert integrate(rule, lambda x: np.exp(x @ c)) == pytest.approx(exact, rel=1e-10 if dim <= 3 else 1e-3)


def test_make_rule_objects():
    rule = GaussLegendreRule(2, 7)
    assert make_rule(rule, 2) is rule
    with pytest.raises(ValueError, match="dim"):
        make_rule(rule, 3)
    with pytest.raises(TypeError):
        make_rule(12, 2)
    assert GaussLegendreRule(2, 7) != GaussLegendreRule(3, 7)
    assert GaussLegendreRule(2, 7) != GaussLegendreRule(2, 8)
    assert GaussLegendreRule(2, 7) != CompositeGaussLegendreRule(2, 1, 7)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("simpson:12", "simpson"),
        ("Gauss_Legendre:12", "Gauss_Legendre"),
        ("gauss_legendre:abc", "gauss_legendre:abc"),
        ("gauss_legendre:2.5", "gauss_legendre:2.5"),
        ("gauss_legendre:0", "positive"),
        ("gauss_legendre:-3", "positive"),
        ("trapezoid:1", "at least 2"),
        ("composite_gauss_legendre:8xq", "composite_gauss_legendre:8xq"),
        ("composite_gauss_legendre:0x4", "positive"),
        ("sobol:100", "power-of-two"),
        ("sobol:0", "positive"),
        ("sobol:64:x", "sobol:64:x"),
    ],
)
def test_make_rule_rejects_bad_specs_with_a_clear_message(spec, match):
    with pytest.raises(ValueError, match=match):
        make_rule(spec, 2)


def test_rule_constructors_reject_bad_sizes():
    with pytest.raises(ValueError, match="dim"):
        GaussLegendreRule(0, 4)
    with pytest.raises(ValueError, match="points"):
        GaussLegendreRule(2, 0)
    with pytest.raises(ValueError, match="power-of-two"):
        SobolRule(2, 1000)
