"""MePoly as a distribution: normalization, entropy, KL, moments and mode against independent
float64 quadrature (numpy Gauss-Legendre grids, scipy.integrate), shapes like torch's own
distributions, argument validation, dtypes and the family as an nn.Module."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from torch.distributions import Independent, Normal, kl_divergence

from mepoly_dist.testing import ACCURATE_RULES, bounded_params, features_ref, gauss_legendre_grid, log_density_on
from mepoly_dist import GaussLegendreRule, MePoly, MePolyFamily, QuadratureWarning, SobolRule, TrapezoidRule, make_rule

LOG2 = math.log(2.0)

# independent reference grids (numpy Gauss-Legendre, points per axis), finer than and not nested
# in the families' rules
REFERENCE_GRID = {1: 600, 2: 160, 3: 40}
_grid_cache = {}


def reference_grid(dim):
    if dim not in _grid_cache:
        _grid_cache[dim] = gauss_legendre_grid(dim, REFERENCE_GRID[dim])
    return _grid_cache[dim]


_family_cache = {}


def family(dim, order, quadrature=None, basis="legendre", dtype=torch.float64):
    key = (dim, order, quadrature, basis, dtype)
    if key not in _family_cache:
        _family_cache[key] = MePolyFamily(dim, order, basis=basis, quadrature=quadrature, dtype=dtype)
    return _family_cache[key]


def max_amplitude(dim, order):
    # keep the densities in the regime where the family rules of ACCURATE_RULES are accurate
    if dim == 3:
        return 8.0
    if order > 6:
        return 8.0
    return 20.0


@st.composite
def accurate_cases(draw, dims=(1, 2, 3), allow_order_14=True):
    dim = draw(st.sampled_from(dims))
    order = draw(st.integers(0, 6))
    if allow_order_14 and dim == 2 and draw(st.integers(0, 7)) == 0:
        order = 14
    spec = draw(st.sampled_from(ACCURATE_RULES[dim]))
    if draw(st.booleans()):
        spec = make_rule(spec, dim)  # a rule object rather than a spec string
    basis = draw(st.sampled_from(["legendre", "legendre", "monomial"]))
    amplitude = draw(st.floats(0.1, max_amplitude(dim, order)))
    seed = draw(st.integers(0, 2**31))
    return dim, order, spec, basis, amplitude, seed


def make_dist(dim, order, spec, basis, amplitude, seed, batch=()):
    fam = family(dim, order, spec, basis)
    lam = bounded_params(np.random.default_rng(seed), fam.num_params, amplitude, batch)
    return MePoly(lam, fam)


# --------------------------------------------------------------------------- normalization
@given(case=accurate_cases())
@settings(max_examples=50)
def test_density_integrates_to_one_and_log_prob_is_independent_energy_minus_log_integral(case):
    dim, order, spec, basis, amplitude, seed = case
    dist = make_dist(*case)
    nodes, weights = reference_grid(dim)
    logp = log_density_on(dist, nodes)
    assert math.fsum(weights * np.exp(logp)) == pytest.approx(1.0, abs=1e-9)
    # log_prob = lambda . phi(x) - log int exp(lambda . phi), all computed here with scipy
    energy = features_ref(nodes, dist.family.exponents.numpy(), basis) @ dist.natural_params.numpy()
    log_z = np.log(math.fsum(weights * np.exp(energy)))
    np.testing.assert_allclose(logp, energy - log_z, rtol=0, atol=1e-9)
    assert dist.log_partition.item() == pytest.approx(log_z, abs=1e-9)


def test_density_integrates_to_one_with_scipy_quad_and_dblquad():
    rng = np.random.default_rng(0)
    fam1 = family(1, 8, "gauss_legendre:128")
    d1 = MePoly(bounded_params(rng, fam1.num_params, 6.0), fam1)
    pdf1 = lambda x: math.exp(d1.log_prob(torch.tensor([x], dtype=torch.float64)).item())
    total, err = integrate.quad(pdf1, -1, 1, epsabs=1e-13, epsrel=1e-13, limit=200)
    assert total == pytest.approx(1.0, abs=1e-11)

    fam2 = family(2, 4, "gauss_legendre:64")
    lam2 = bounded_params(rng, fam2.num_params, 4.0)
    d2 = MePoly(lam2, fam2)
    exps = fam2.exponents.numpy()
    lam2 = lam2.numpy()
    A = d2.log_partition.item()
    # an independent (scipy) evaluation of exp(lambda . phi(x, y) - A)
    pdf2 = lambda y, x: math.exp(float(features_ref(np.array([x, y]), exps) @ lam2) - A)
    total, err = integrate.dblquad(pdf2, -1, 1, -1, 1, epsabs=1e-12, epsrel=1e-12)
    assert total == pytest.approx(1.0, abs=1e-10)
    # and log_prob agrees with that formula at a few points
    x = torch.from_numpy(rng.uniform(-1, 1, size=(9, 2)))
    np.testing.assert_allclose(d2.log_prob(x).numpy(), features_ref(x.numpy(), exps) @ lam2 - A, atol=1e-12)


@pytest.mark.parametrize("dim, order, spec", [(1, 6, "trapezoid:2049"), (2, 4, "trapezoid:257")])
def test_trapezoid_family_is_normalized_to_its_second_order_accuracy(dim, order, spec):
    dist = make_dist(dim, order, spec, "legendre", 3.0, 1)
    nodes, weights = reference_grid(dim)
    h = 2.0 / (int(spec.split(":")[1]) - 1)
    assert math.fsum(weights * np.exp(log_density_on(dist, nodes))) == pytest.approx(1.0, abs=100 * h * h)


# --------------------------------------------------------------------------- entropy
def test_uniform_entropy_is_d_log_2_for_every_rule():
    for dim, specs in {
        1: ["gauss_legendre:7", "trapezoid:10", "composite_gauss_legendre:3x2", "sobol:32", None],
        2: ["gauss_legendre:9", "trapezoid:11", "composite_gauss_legendre:4", "sobol:256:2", None],
        3: ["gauss_legendre:5", "trapezoid:4", "sobol:512", None],
        5: ["sobol:1024"],
    }.items():
        for spec in specs:
            for basis in ("legendre", "monomial"):
                fam = family(dim, 2, spec, basis)
                lam = torch.zeros(fam.num_params, dtype=torch.float64)
                assert MePoly(lam, fam).entropy().item() == pytest.approx(dim * LOG2, abs=1e-12)
                # the constant parameter alone does not change the density
                lam[0] = 7.5
                dist = MePoly(lam, fam)
                assert dist.entropy().item() == pytest.approx(dim * LOG2, abs=1e-12)
                x = torch.rand(5, dim, dtype=torch.float64) * 2 - 1
                torch.testing.assert_close(dist.log_prob(x), torch.full((5,), -dim * LOG2, dtype=torch.float64), rtol=0, atol=1e-12)


@given(
    dim=st.integers(1, 3),
    order=st.integers(0, 6),
    scale=st.floats(0.1, 20.0),
    spec_index=st.integers(0, 3),
    seed=st.integers(0, 2**31),
)
@settings(max_examples=30)
def test_entropy_never_exceeds_d_log_2(dim, order, scale, spec_index, seed):
    spec = ["gauss_legendre:8", "trapezoid:9", "composite_gauss_legendre:3x3", "sobol:256"][spec_index]
    fam = family(dim, order, spec)
    g = torch.Generator().manual_seed(seed)
    lam = scale * torch.randn(4, fam.num_params, dtype=torch.float64, generator=g)
    H = MePoly(lam, fam).entropy()
    assert H.shape == (4,)
    assert (H <= dim * LOG2 + 1e-12).all()


@given(case=accurate_cases())
@settings(max_examples=25)
def test_entropy_is_minus_expected_log_density_by_independent_quadrature(case):
    dim = case[0]
    dist = make_dist(*case)
    nodes, weights = reference_grid(dim)
    logp = log_density_on(dist, nodes)
    H_ref = -math.fsum(weights * np.exp(logp) * logp)
    assert dist.entropy().item() == pytest.approx(H_ref, abs=1e-8 * (1 + abs(H_ref)))
    # consistency on the quadrature measure: H = A - lambda . E[phi]
    A, lam, mu = dist.log_partition, dist.natural_params, dist.moments
    assert dist.entropy().item() == pytest.approx((A - (lam * mu).sum()).item(), abs=1e-10 * (1 + A.abs().item()))


# --------------------------------------------------------------------------- KL
@given(case=accurate_cases(allow_order_14=True), seed2=st.integers(0, 2**31), amp2=st.floats(0.1, 8.0))
@settings(max_examples=25)
def test_kl_divergence_against_independent_integral(case, seed2, amp2):
    dim, order, spec, basis, amplitude, seed = case
    p = make_dist(*case)
    q = make_dist(dim, order, spec, basis, amp2, seed2)
    kl = kl_divergence(p, q)
    assert kl.shape == ()
    assert kl.item() >= -1e-12
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-12)
    nodes, weights = reference_grid(dim)
    logp, logq = log_density_on(p, nodes), log_density_on(q, nodes)
    kl_ref = math.fsum(weights * np.exp(logp) * (logp - logq))
    assert kl.item() == pytest.approx(kl_ref, abs=1e-8 * (1 + kl_ref))
    assert kl_ref >= -1e-12


@given(dim=st.integers(1, 3), order=st.integers(0, 6), scale=st.floats(0.1, 20.0), seed=st.integers(0, 2**31))
@settings(max_examples=25)
def test_kl_is_nonnegative_and_zero_on_equal_parameters_for_any_rule(dim, order, scale, seed):
    fam = family(dim, order, ["trapezoid:9", "sobol:128", "gauss_legendre:7"][seed % 3])
    g = torch.Generator().manual_seed(seed)
    lam_p = scale * torch.randn(3, fam.num_params, dtype=torch.float64, generator=g)
    lam_q = scale * torch.randn(3, fam.num_params, dtype=torch.float64, generator=g)
    p, q = MePoly(lam_p, fam), MePoly(lam_q, fam)
    kl = kl_divergence(p, q)
    assert kl.shape == (3,)
    assert (kl >= -1e-12 * (1 + scale * fam.num_params)).all()
    assert kl_divergence(p, MePoly(lam_p.clone(), fam)).abs().max().item() <= 1e-12 * (1 + scale * fam.num_params)
    # batched KL = row-by-row KL
    for i in range(3):
        assert kl[i].item() == pytest.approx(kl_divergence(MePoly(lam_p[i], fam), MePoly(lam_q[i], fam)).item(), rel=1e-12, abs=1e-12)


def test_kl_is_twice_differentiable_in_both_arguments():
    fam = family(2, 3, "gauss_legendre:6")
    g = torch.Generator().manual_seed(0)
    lam_p = (1.5 * torch.randn(2, fam.num_params, dtype=torch.float64, generator=g)).requires_grad_(True)
    lam_q = (1.5 * torch.randn(2, fam.num_params, dtype=torch.float64, generator=g)).requires_grad_(True)
    fn = lambda a, b: kl_divergence(MePoly(a, fam), MePoly(b, fam))
    assert torch.autograd.gradcheck(fn, (lam_p, lam_q), eps=1e-6, atol=1e-7, rtol=1e-6)
    assert torch.autograd.gradgradcheck(fn, (lam_p, lam_q), eps=1e-6, atol=1e-7, rtol=1e-6)
    # at q = p the KL has zero gradient and its Hessian in lambda_q is Cov_p[phi] (Fisher information)
    # (on an accurate rule, so that the quadrature measure is the density itself)
    fam = family(2, 3, "gauss_legendre:40")
    fn = lambda a, b: kl_divergence(MePoly(a, fam), MePoly(b, fam))
    lam = lam_p.detach()[0]
    hess = torch.autograd.functional.hessian(lambda b: fn(lam, b), lam.clone())
    nodes, weights = gauss_legendre_grid(2, 57)
    phi = features_ref(nodes, fam.exponents.numpy())
    e = phi @ lam.numpy()
    p = weights * np.exp(e - e.max())
    p /= p.sum()
    np.testing.assert_allclose(hess.numpy(), np.cov(phi.T, aweights=p, bias=True), atol=1e-10)
    lq = lam.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(lam, lq), lq)
    assert grad.abs().max() < 1e-12


def test_kl_between_different_families_raises():
    p = MePoly(torch.zeros(10, dtype=torch.float64), family(2, 3, "gauss_legendre:6"))
    q = MePoly(torch.zeros(10, dtype=torch.float64), family(2, 3, "gauss_legendre:7"))
    with pytest.raises(ValueError, match="famil"):
        kl_divergence(p, q)
    # an equal configuration counts as the same family
    q2 = MePoly(torch.zeros(10, dtype=torch.float64), MePolyFamily(2, 3, quadrature="gauss_legendre:6", dtype=torch.float64))
    assert kl_divergence(p, q2).item() == pytest.approx(0.0, abs=1e-14)


# --------------------------------------------------------------------------- mean, variance
@given(case=accurate_cases(), batch=st.sampled_from([(), (2,)]))
@settings(max_examples=25)
def test_mean_and_variance_against_independent_integration(case, batch):
    dim = case[0]
    dist = make_dist(*case, batch=batch)
    assert dist.mean.shape == dist.variance.shape == batch + (dim,)
    nodes, weights = reference_grid(dim)
    p = weights[:, None] * np.exp(log_density_on(dist, nodes)).reshape(len(nodes), -1)  # (N, B)
    mean = np.einsum("nb,nd->bd", p, nodes)
    second = np.einsum("nb,nd->bd", p, nodes**2)
    np.testing.assert_allclose(dist.mean.reshape(-1, dim).numpy(), mean, atol=1e-9)
    np.testing.assert_allclose(dist.variance.reshape(-1, dim).numpy(), second - mean**2, atol=1e-9)
    assert (dist.variance > 0).all() and (dist.variance <= 1).all()
    # E[phi] against the same independent integral
    phi = features_ref(nodes, dist.family.exponents.numpy(), case[3])
    np.testing.assert_allclose(dist.moments.reshape(-1, dist.family.num_params).numpy(), p.T @ phi, atol=1e-9)


def test_uniform_mean_and_variance():
    dist = MePoly(torch.zeros(3, 10, dtype=torch.float64), family(3, 2, "gauss_legendre:4"))
    torch.testing.assert_close(dist.mean, torch.zeros(3, 3, dtype=torch.float64), atol=1e-14, rtol=0)
    torch.testing.assert_close(dist.variance, torch.full((3, 3), 1 / 3, dtype=torch.float64), atol=1e-14, rtol=0)


# --------------------------------------------------------------------------- mode
FINE_GRID = {1: 20001, 2: 401, 3: 41}


@given(
    dim=st.sampled_from([1, 1, 2, 2, 2, 3]),
    order=st.integers(0, 6),
    scale=st.floats(0.1, 20.0),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
@settings(max_examples=50)
def test_mode_beats_every_point_of_a_fine_grid(dim, order, scale, seed, data):
    if dim == 2 and data.draw(st.integers(0, 5), label="order14") == 0:
        order = 14
    fam = family(dim, order)
    g = torch.Generator().manual_seed(seed)
    lam = scale * torch.randn(2, fam.num_params, dtype=torch.float64, generator=g)
    lam = lam / lam.abs().sum(-1, keepdim=True) * scale * math.sqrt(fam.num_params)
    dist = MePoly(lam, fam)
    mode = dist.mode
    assert mode.shape == (2, dim)
    assert (mode.abs() <= 1).all()
    line = np.linspace(-1, 1, FINE_GRID[dim])
    grid = np.stack(np.meshgrid(*([line] * dim), indexing="ij"), -1).reshape(-1, dim)
    energy = features_ref(grid, fam.exponents.numpy()) @ lam.numpy().T  # (G, 2), independent
    best = energy.max(0)
    at_mode = dist.energy(mode[:, None, :].transpose(0, 1)).reshape(2)  # the mode test needs no normalizer
    for b in range(2):
        assert at_mode[b].item() >= best[b] - 1e-9 * (1 + abs(best[b]))


def test_mode_finds_the_higher_of_two_boundary_maxima():
    # found by test_mode_beats_every_point_of_a_fine_grid (hypothesis): two maxima on opposite
    # edges of the square, (0.679, -1) and (0.63, 1); the mode must be the higher one
    fam = family(2, 5)
    lam = torch.tensor(
        [-1.0382082019131453, 1.3033933953066772, -1.6246017505363086, -0.6668774139086845, -0.9599410002039475,
         1.607474754189623, -0.42401391564284846, 0.8431668103937834, 0.49496625456874244, -0.2724938759335825,
         -0.9181966158105755, -0.48545754152674986, -0.025414089403786325, 0.31287705094507273, 1.2329372842335673,
         -0.30760876387225383, -0.9086163872448971, -1.3532465645617453, -0.5072677025253385, 1.6064002475485593,
         1.7460821644319267],
        dtype=torch.float64,
    )  # fmt: skip
    dist = MePoly(lam, fam)
    line = np.linspace(-1, 1, 2001)
    grid = np.stack(np.meshgrid(line, line, indexing="ij"), -1).reshape(-1, 2)
    energy = features_ref(grid, fam.exponents.numpy()) @ lam.numpy()
    mode = dist.mode
    assert (dist.log_prob(mode) + dist.log_partition).item() >= energy.max() - 1e-9
    np.testing.assert_allclose(mode.numpy(), grid[energy.argmax()], atol=2e-3)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_mode_of_a_constant_density(dim):
    # order 0: every point of the cube is a mode; any point in the cube is a valid answer
    fam = family(dim, 0, "gauss_legendre:4")
    mode = MePoly(torch.randn(3, 1, dtype=torch.float64), fam).mode
    assert mode.shape == (3, dim) and (mode.abs() <= 1).all()


def test_mode_of_known_densities():
    # a single interior peak: energy -10 (x - 0.3)^2 - 10 (y + 0.2)^2 in the Legendre basis
    fam = family(2, 2, "gauss_legendre:20")
    nodes, weights = gauss_legendre_grid(2, 10)
    target = -10 * (nodes[:, 0] - 0.3) ** 2 - 10 * (nodes[:, 1] + 0.2) ** 2
    phi = features_ref(nodes, fam.exponents.numpy())
    lam = np.linalg.lstsq(phi * np.sqrt(weights)[:, None], target * np.sqrt(weights), rcond=None)[0]
    mode = MePoly(torch.from_numpy(lam), fam).mode
    np.testing.assert_allclose(mode.numpy(), [0.3, -0.2], atol=1e-8)
    # a linear energy peaks at a corner
    lam = torch.zeros(fam.num_params, dtype=torch.float64)
    lam[1], lam[2] = 2.0, -3.0  # 2 x - 3 y
    np.testing.assert_allclose(MePoly(lam, fam).mode.numpy(), [1.0, -1.0], atol=1e-12)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)])
@pytest.mark.parametrize("sample_shape", [(), (4,), (3, 4)])
def test_shapes_like_torch_distributions(batch_shape, sample_shape):
    fam = family(2, 4, "gauss_legendre:12")
    lam = 0.5 * torch.randn(*batch_shape, fam.num_params, dtype=torch.float64)
    dist = MePoly(lam, fam)
    ref = Independent(Normal(torch.zeros(*batch_shape, 2, dtype=torch.float64), 1.0), 1)
    assert dist.batch_shape == ref.batch_shape == torch.Size(batch_shape)
    assert dist.event_shape == ref.event_shape == torch.Size((2,))
    x = dist.sample(sample_shape)
    assert x.shape == ref.sample(sample_shape).shape == torch.Size(sample_shape) + torch.Size(batch_shape) + (2,)
    assert x.dtype == torch.float64 and (x.abs() <= 1).all()
    assert dist.log_prob(x).shape == ref.log_prob(x).shape
    for value in (dist.entropy(), dist.log_partition):
        assert value.shape == ref.entropy().shape
    for value in (dist.mean, dist.variance, dist.mode):
        assert value.shape == ref.mean.shape
    assert dist.moments.shape == torch.Size(batch_shape) + (fam.num_params,)
    # broadcasting of values against the batch, as for torch's distributions
    value = torch.rand(5, *([1] * len(batch_shape)), 2, dtype=torch.float64) * 2 - 1
    assert dist.log_prob(value).shape == ref.log_prob(value).shape
    lp = dist.log_prob(value)
    if batch_shape:
        # each entry is the log-density of the matching row
        idx = (0,) * len(batch_shape)
        single = MePoly(lam[idx], fam).log_prob(value.reshape(5, 2))
        torch.testing.assert_close(lp[(slice(None),) + idx], single, rtol=1e-12, atol=1e-12)


def test_expand_then_log_prob_entropy_and_sample():
    fam = family(2, 4, "gauss_legendre:12")
    lam = torch.randn(fam.num_params, dtype=torch.float64)
    dist = MePoly(lam, fam, validate_args=True)
    big = dist.expand((4, 3))
    ref = Independent(Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1).expand((4, 3))
    assert big.batch_shape == ref.batch_shape == (4, 3) and big.event_shape == (2,)
    assert big._validate_args
    x = torch.rand(4, 3, 2, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(big.log_prob(x), dist.log_prob(x), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(big.entropy(), dist.entropy().expand(4, 3), rtol=1e-13, atol=1e-13)
    assert big.sample((2,)).shape == (2, 4, 3, 2)
    assert big.mean.shape == (4, 3, 2)
    # expanding a batched distribution along a new leading dimension
    batched = MePoly(torch.randn(3, fam.num_params, dtype=torch.float64), fam)
    e = batched.expand((5, 3))
    torch.testing.assert_close(e.log_prob(x[:1]), batched.log_prob(x[0]).expand(5, 3), rtol=1e-13, atol=1e-13)
    # an incompatible batch shape fails like it does for torch's distributions
    normal = Independent(Normal(torch.zeros(3, 2, dtype=torch.float64), 1.0), 1)
    with pytest.raises(RuntimeError):
        normal.expand((4,))
    with pytest.raises(RuntimeError):
        batched.expand((4,))
    # expanded distributions still work with KL
    torch.testing.assert_close(kl_divergence(e, e), torch.zeros(5, 3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_family_distribution_shorthand():
    fam = family(1, 3, "gauss_legendre:16")
    d = fam.distribution(torch.zeros(2, 4, dtype=torch.float64))
    assert isinstance(d, MePoly) and d.batch_shape == (2,) and d.family is fam


# --------------------------------------------------------------------------- validation
def test_validate_args():
    fam = family(2, 3, "gauss_legendre:6")
    F = fam.num_params
    lam = torch.zeros(3, F, dtype=torch.float64)
    with pytest.raises(ValueError, match="num_params"):
        MePoly(torch.zeros(F + 1, dtype=torch.float64), fam)
    with pytest.raises(ValueError, match="num_params"):
        MePoly(torch.zeros(3, F - 1, dtype=torch.float64), fam)
    with pytest.raises(ValueError):
        MePoly(torch.tensor(0.0, dtype=torch.float64), fam)  # a scalar has no parameter axis
    with pytest.raises(ValueError, match="dtype"):
        MePoly(torch.zeros(F, dtype=torch.float32), fam)
    with pytest.raises(ValueError, match="device"):
        MePoly(torch.zeros(F, dtype=torch.float64, device="meta"), fam)
    with pytest.raises(ValueError, match="floating"):
        MePoly(torch.zeros(F, dtype=torch.long), fam)
    with pytest.raises(TypeError):
        MePoly(lam, "not a family")
    for bad in (float("nan"), float("inf"), -float("inf")):
        poisoned = lam.clone()
        poisoned[1, 4] = bad
        with pytest.raises(ValueError):
            MePoly(poisoned, fam, validate_args=True)
        MePoly(poisoned, fam, validate_args=False)  # no check when validation is off
    dist = MePoly(lam, fam, validate_args=True)
    with pytest.raises(ValueError):
        dist.log_prob(torch.zeros(3, 3, dtype=torch.float64))  # wrong event size
    with pytest.raises(ValueError):
        dist.log_prob(torch.zeros(3, dtype=torch.float64))  # missing event dimension
    with pytest.raises(ValueError):
        dist.log_prob(torch.zeros(4, 2, dtype=torch.float64))  # batch shape does not broadcast
    for outside in ([1.0 + 1e-9, 0.0], [0.0, -1.5], [float("nan"), 0.0]):
        with pytest.raises(ValueError):
            dist.log_prob(torch.tensor([outside] * 3, dtype=torch.float64))
    # the cube's boundary belongs to the support
    edge = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(dist.log_prob(edge), torch.full((3,), -2 * LOG2, dtype=torch.float64), rtol=0, atol=1e-12)


def test_validation_follows_torch_default_switch():
    fam = family(2, 3, "gauss_legendre:6")
    nan = torch.full((fam.num_params,), float("nan"), dtype=torch.float64)
    previous = torch.distributions.Distribution._validate_args
    try:
        torch.distributions.Distribution.set_default_validate_args(True)
        with pytest.raises(ValueError):
            MePoly(nan, fam)
        torch.distributions.Distribution.set_default_validate_args(False)
        MePoly(nan, fam)
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)


# --------------------------------------------------------------------------- extreme parameters
@given(
    dim=st.integers(1, 3),
    order=st.integers(1, 6),
    magnitude=st.floats(1e2, 1e4),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31),
)
@settings(max_examples=20)
def test_huge_parameters_give_finite_values_and_gradients(dim, order, magnitude, dtype, seed):
    fam = family(dim, order, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    lam = torch.randn(2, fam.num_params, dtype=torch.float64, generator=g)
    lam = (magnitude * lam / lam.abs().amax(-1, keepdim=True)).to(dtype).requires_grad_(True)
    # densities this sharp may be beyond the node budget: they warn (QuadratureWarning), and
    # what this test asks is that every value stays finite
    warnings.simplefilter("ignore", QuadratureWarning)
    dist = MePoly(lam, fam, validate_args=False)
    x = (torch.rand(7, 1, dim, dtype=torch.float64, generator=g) * 2 - 1).to(dtype)
    lp, H = dist.log_prob(x), dist.entropy()
    assert torch.isfinite(lp).all() and torch.isfinite(H).all()
    assert torch.isfinite(dist.log_partition).all() and torch.isfinite(dist.mean).all()
    assert (H <= dim * LOG2 + 1e-4).all()
    (grad,) = torch.autograd.grad(lp.sum() + H.sum(), lam, retain_graph=True)
    assert torch.isfinite(grad).all()
    other = MePoly(lam.detach().flip(0), fam)
    kl = kl_divergence(dist, other)
    assert torch.isfinite(kl).all()
    (gk,) = torch.autograd.grad(kl.sum(), lam)
    assert torch.isfinite(gk).all()


# --------------------------------------------------------------------------- the family
def test_family_moves_with_to_and_keeps_node_features_out_of_state_dict():
    fam = MePolyFamily(2, 6, quadrature="gauss_legendre:20")  # default dtype: float32
    assert fam.dtype == torch.float32 and fam.node_features.dtype == torch.float32
    assert len(fam.state_dict()) == 0  # node features, nodes, weights, exponents: not persistent
    fam.to(torch.float64)
    assert fam.dtype == torch.float64
    for name in ("node_features", "nodes", "log_weights"):
        assert getattr(fam, name).dtype == torch.float64
    # rebuilt at full precision (not up-cast from float32): compare with scipy at numpy's nodes
    x1, w1 = np.polynomial.legendre.leggauss(20)
    nodes = np.stack(np.meshgrid(x1, x1, indexing="ij"), -1).reshape(-1, 2)
    ref = features_ref(nodes, fam.exponents.numpy())
    order_fam = np.lexsort(fam.nodes.numpy().T[::-1])
    order_ref = np.lexsort(nodes.T[::-1])
    np.testing.assert_allclose(fam.nodes.numpy()[order_fam], nodes[order_ref], atol=1e-15)
    np.testing.assert_allclose(fam.node_features.numpy()[order_fam], ref[order_ref], atol=1e-13)
    np.testing.assert_allclose(np.exp(fam.log_weights.numpy())[order_fam], np.outer(w1, w1).ravel()[order_ref], rtol=1e-12)
    # float -> double round trip loses nothing
    fam.float().double()
    np.testing.assert_allclose(fam.node_features.numpy()[order_fam], ref[order_ref], atol=1e-13)
    assert MePoly(torch.zeros(fam.num_params, dtype=torch.float64), fam).entropy().item() == pytest.approx(2 * LOG2, abs=1e-12)
    # a policy module holding a head and the family: only the head is checkpointed
    policy = torch.nn.Module()
    policy.head = torch.nn.Linear(3, fam.num_params)
    policy.family = fam
    assert set(policy.state_dict()) == {"head.weight", "head.bias"}
    policy.to(torch.float64)
    assert fam.dtype == torch.float64 and policy.head.weight.dtype == torch.float64
    dist = MePoly(policy.head(torch.randn(5, 3, dtype=torch.float64)), fam)
    assert dist.sample().dtype == torch.float64
    # after moving to float32 the family works in float32
    policy.float()
    dist32 = MePoly(policy.head(torch.randn(5, 3)), fam)
    assert dist32.entropy().dtype == torch.float32 and dist32.sample().dtype == torch.float32
    assert set(fam.state_dict()) == set()


@pytest.mark.parametrize("dim, order", [(1, 0), (1, 14), (2, 14), (3, 4), (4, 3), (2, 0)])
def test_num_params(dim, order):
    fam = MePolyFamily(dim, order, quadrature="sobol:64" if dim > 3 else f"gauss_legendre:{order + 1}")
    assert fam.num_params == math.comb(order + dim, dim)
    assert fam.node_features.shape == (fam.quadrature.num_nodes, fam.num_params)
    assert fam.config == {"dim": dim, "order": order, "basis": "legendre", "quadrature": fam.quadrature.spec}


def test_family_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dim"):
        MePolyFamily(0, 3)
    with pytest.raises(ValueError, match="order"):
        MePolyFamily(2, -1)
    with pytest.raises(ValueError, match="basis"):
        MePolyFamily(2, 3, basis="hermite")
    with pytest.raises(ValueError, match="chunk"):
        MePolyFamily(2, 3, chunk_size=0)
    with pytest.raises(ValueError):
        MePolyFamily(2, 3, quadrature="simpson:5")
    with pytest.raises(ValueError, match="dim"):
        MePolyFamily(2, 3, quadrature=GaussLegendreRule(3, 4))
    fam = MePolyFamily(2, 3, quadrature=TrapezoidRule(2, 9))
    assert fam.quadrature.spec == "trapezoid:9"
    assert MePolyFamily(5, 2, quadrature=SobolRule(5, 256)).quadrature.num_nodes == 256


@pytest.mark.parametrize("basis", ["legendre", "monomial"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_prob_gradient_wrt_constant_parameter_is_zero(basis, dtype):
    fam = family(2, 5, "gauss_legendre:16", basis, dtype)
    const = int(torch.nonzero(fam.exponents.sum(-1) == 0)[0, 0])
    lam = (2 * torch.randn(4, fam.num_params)).to(dtype).requires_grad_(True)
    dist = MePoly(lam, fam)
    x = dist.sample((6,))
    (grad,) = torch.autograd.grad(dist.log_prob(x).sum(), lam)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert grad[:, const].abs().max().item() <= tol * 6
    assert grad.abs().max() > 0.01  # other parameters do matter
    # shifting the constant parameter leaves the density unchanged
    shifted = lam.detach().clone()
    shifted[:, const] += 3.0
    torch.testing.assert_close(MePoly(shifted, fam).log_prob(x), dist.log_prob(x).detach(), rtol=10 * tol, atol=10 * tol)
