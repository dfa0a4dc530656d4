"""Statistical tests of MePoly.sample: chi-square goodness of fit of 10^6 samples against cell
masses integrated independently (per-cell Gauss-Legendre in float64, on a histogram grid that does
not align with the sampler's cells), continuity, and consistency of log_prob with the samples.

Envelope violations of the rejection sampler are RuntimeWarnings, which the suite turns into
errors (conftest.py), so every sampling call here also asserts that the envelope held.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from mepoly_dist.testing import bounded_params, cell_grid, features_ref, log_density_on
from mepoly_dist import MePoly, MePolyFamily
from mepoly_dist.fit import project_energy
from mepoly_dist.sampling import default_cells_per_dim, sample_mepoly, sampler_cells_per_dim

ALPHA = 1e-4  # significance level of every goodness-of-fit test
N = 10**6


def cell_masses(dist, bins: int, points: int = 8):
    """Masses of the bins^D equal cells of the cube under exp(log_prob), by per-cell Gauss-Legendre."""
    dim = dist.family.dim
    nodes, weights, flat = cell_grid(dim, bins, points)
    dens = np.exp(log_density_on(dist, nodes))
    if dens.ndim > 1:  # batched distribution: (nodes, B)
        return np.stack([np.bincount(flat, weights * dens[:, b], minlength=bins**dim) for b in range(dens.shape[1])])
    return np.bincount(flat, weights * dens, minlength=bins**dim)


def histogram(samples: np.ndarray, bins: int) -> np.ndarray:
    dim = samples.shape[1]
    counts, _ = np.histogramdd(samples, bins=[np.linspace(-1.0, 1.0, bins + 1)] * dim)
    return counts.ravel()


def chi_square_pvalue(counts: np.ndarray, masses: np.ndarray, min_expected: float = 20.0) -> float:
    """Pearson's test of observed counts against cell masses; cells with small expected counts
    are pooled into one cell (checked separately when even the pool is tiny)."""
    n = counts.sum()
    expected = n * masses / masses.sum()
    big = expected >= min_expected
    observed, expect = list(counts[big]), list(expected[big])
    rest_o, rest_e = counts[~big].sum(), expected[~big].sum()
    if rest_e >= 5:
        observed.append(rest_o)
        expect.append(rest_e)
    else:  # the pooled low-density cells must stay (almost) empty
        assert rest_o <= stats.poisson.ppf(1 - 1e-7, rest_e), f"{rest_o} samples where {rest_e:.3g} are expected"
    observed, expect = np.array(observed), np.array(expect)
    assert len(observed) >= 10, "too few cells for a meaningful test"
    return float(stats.chisquare(observed, expect).pvalue)


def check_goodness_of_fit(dist, samples: np.ndarray, bins: int, points: int = 8):
    masses = cell_masses(dist, bins, points)
    # the density is normalized (independent integral of exp(log_prob))
    assert masses.sum() == pytest.approx(1.0, abs=1e-6)
    p = chi_square_pvalue(histogram(samples, bins), masses)
    assert p > ALPHA, f"chi-square p-value {p:.3g}"
    return masses


def check_samples_are_continuous(samples: np.ndarray, family):
    n = len(samples)
    assert np.isfinite(samples).all() and (np.abs(samples) <= 1).all()
    for d in range(samples.shape[1]):
        assert len(np.unique(samples[:, d])) >= 0.999 * n, "samples are snapped to a grid"
    nodes = family.nodes.double().numpy()
    for d in range(samples.shape[1]):
        assert np.isin(samples[:, d], nodes[:, d]).mean() < 1e-3, "samples sit on quadrature nodes"
    assert (np.abs(samples) == 1).mean() < 1e-4


def check_log_prob_consistency(dist, samples: np.ndarray, masses: np.ndarray, bins: int):
    """log_prob of the samples against the histogram / quadrature:
    * the mean of log p(X) is -H (the log-partition cancels: this compares sample and quadrature
      averages of the energy);
    * importance identity E[1{X in S} / p(X)] = vol(S) on a union S of histogram cells where the
      density is not small (bounded estimator)."""
    dim = dist.family.dim
    logp = log_density_on(dist, samples)
    n = len(logp)
    se = logp.std() / math.sqrt(n)
    assert logp.mean() == pytest.approx(-dist.entropy().item(), abs=6 * se + 1e-6)
    area = (2.0 / bins) ** dim
    density = masses / area
    chosen = density >= 0.3 * density.max()
    index = np.ravel_multi_index(tuple(np.minimum(((samples + 1) / 2 * bins).astype(int), bins - 1).T), (bins,) * dim)
    y = np.where(chosen[index], np.exp(-logp), 0.0)
    volume = chosen.sum() * area
    assert y.mean() == pytest.approx(volume, abs=6 * y.std() / math.sqrt(n))


def sample(dist, n):
    x = dist.sample((n,))
    assert x.shape == (n,) + tuple(dist.batch_shape) + (dist.family.dim,)
    assert x.dtype == dist.natural_params.dtype
    return x.double().numpy()


# --------------------------------------------------------------------------- densities
@pytest.fixture(scope="module")
def family_2d_14():
    return MePolyFamily(2, 14, dtype=torch.float64)


def _bumps_log_density(centers, sigma, height):
    centers = np.asarray(centers)

    def f(x):
        d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        return height * np.exp(-d2 / (2 * sigma**2)).sum(-1)

    return f


def test_smooth_random_density_2d():
    fam = MePolyFamily(2, 6, dtype=torch.float64)
    dist = MePoly(bounded_params(np.random.default_rng(0), fam.num_params, 6.0), fam)
    x = sample(dist, N)
    check_samples_are_continuous(x, fam)
    masses = check_goodness_of_fit(dist, x, bins=40)
    check_log_prob_consistency(dist, x, masses, 40)


def test_lemniscate_ridge_order_14(family_2d_14):
    # a sharp ridge along the paper's lemniscate (a = 0.9, section 5.2): 48 Gaussian bumps of
    # width 0.1 and height 1 / 0.05 on the curve, as exp(r / alpha) at alpha = 0.05, projected onto order 14
    t = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    curve = 0.9 * np.stack([np.cos(t), np.sin(t) * np.cos(t)], 1) / (1.0 + np.sin(t) ** 2)[:, None]
    lam = project_energy(_bumps_log_density(curve, 0.1, 1.0 / 0.05), family_2d_14)
    dist = MePoly(lam, family_2d_14)
    x = sample(dist, N)
    check_samples_are_continuous(x, family_2d_14)
    masses = check_goodness_of_fit(dist, x, bins=40)
    check_log_prob_consistency(dist, x, masses, 40)
    # sharply peaked: most of the mass in a small part of the square
    top = np.sort(masses)[::-1]
    assert top[: len(top) // 5].sum() > 0.6


def test_sum_of_narrow_bumps_order_14(family_2d_14):
    centers = [(-0.6, -0.5), (0.55, 0.6), (0.0, 0.05), (0.85, -0.8)]
    lam = project_energy(_bumps_log_density(centers, 0.08, 25.0), family_2d_14)
    dist = MePoly(lam, family_2d_14)
    x = sample(dist, N)
    check_samples_are_continuous(x, family_2d_14)
    masses = check_goodness_of_fit(dist, x, bins=40)
    check_log_prob_consistency(dist, x, masses, 40)
    # multi-modal: at least three well separated bumps carry mass
    near = [(np.linalg.norm(x - np.asarray(c), axis=1) < 0.1).mean() for c in centers]
    assert sum(f > 1e-3 for f in near) >= 3


def test_order_8_policy_head_from_its_coarser_first_cells():
    # the Smooth World head (D = 2, order 8) starts from 19 cells per axis, not 33: a sharp
    # three-direction density (+40 nats at the bumps) must still be sampled exactly, with no
    # proposal above its cell's envelope
    fam = MePolyFamily(2, 8, dtype=torch.float64)
    assert sampler_cells_per_dim(2, 8) < default_cells_per_dim(2)
    centers = [(-0.7, -0.7), (0.7, -0.7), (0.0, 0.8)]
    lam = project_energy(_bumps_log_density(centers, 0.15, 40.0), fam)
    dist = MePoly(lam, fam)
    x, stats = dist.sample_with_stats((N,))
    assert stats.violations == 0 and stats.restarted_rows == 0  # no proposal above its cell's envelope
    assert stats.accepted == N and stats.proposals >= N
    x = x.numpy()
    check_samples_are_continuous(x, fam)
    masses = check_goodness_of_fit(dist, x, bins=40)
    check_log_prob_consistency(dist, x, masses, 40)


def test_envelope_violations_are_detected_and_corrected(monkeypatch):
    # a deliberately wrong envelope: every cell's residual bound set to zero, so the envelope is
    # the tangent plane at the centre and the density rises above it wherever it curves up.
    # Uncorrected, those regions would be under-weighted by up to e^-(residual) (the chi-square
    # test fails by a wide margin); the sampler must see the violations, raise those bounds and
    # draw the row again, so that the samples still follow the density.
    from mepoly_dist import sampling

    bound = sampling._Stencil.bound
    monkeypatch.setattr(sampling._Stencil, "bound", lambda self, *args: (lambda b, spread, axis: (0 * b, spread, axis))(*bound(self, *args)))
    fam = MePolyFamily(2, 8, dtype=torch.float64)
    lam = project_energy(_bumps_log_density([(-0.6, -0.5), (0.5, 0.6)], 0.25, 8.0), fam)
    n = 200_000
    x, stats = sample_mepoly(lam[None], fam, n, cells=8, max_depth=0, return_stats=True)
    assert stats.violations > 0 and stats.restarted_rows >= 1
    assert stats.accepted == n and stats.cells == 64 and stats.proposals > n
    check_goodness_of_fit(MePoly(lam, fam), x[:, 0].numpy(), bins=20)


def _interval_nodes(a, b, points):
    x, w = np.polynomial.legendre.leggauss(points)
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    return ((a + b) / 2)[:, None] + ((b - a) / 2)[:, None] * x[None], ((b - a) / 2)[:, None] * w[None]


def windowed_masses_1d(dist, inner_bins: int = 100, points: int = 8, width: float = 30.0):
    """Bin edges and masses for a 1-D Legendre MePoly of any width.

    The window is ``width`` length scales around the mode, the scale taken from the exact
    (numpy legder) first and second derivatives of the energy there; ``inner_bins`` equal bins
    cover it and the two outer intervals are integrated on fine composite grids.  All masses
    come from per-bin Gauss-Legendre integration of exp(log_prob).  Also returns the nodes and
    normalized weights of the window, for moments."""
    c = np.zeros(dist.family.order + 1)
    c[dist.family.exponents.numpy()[:, 0]] = dist.natural_params.numpy()
    m = float(dist.mode.reshape(-1)[0])
    d1 = np.polynomial.legendre.legval(m, np.polynomial.legendre.legder(c))
    d2 = np.polynomial.legendre.legval(m, np.polynomial.legendre.legder(c, 2))
    scales = [0.1]
    if d2 < 0:
        scales.append(1 / math.sqrt(-d2))
    if abs(m) == 1.0 and d1 != 0:
        scales.append(1 / abs(d1))
    scale = min(scales)
    lo, hi = max(-1.0, m - width * scale), min(1.0, m + width * scale)
    inner = np.linspace(lo, hi, inner_bins + 1)
    top = log_density_on(dist, np.array([[m]]))[0]

    def masses_of(a, b):
        nodes, weights = _interval_nodes(a, b, points)
        dens = np.exp(log_density_on(dist, nodes.reshape(-1, 1)) - top).reshape(nodes.shape)
        return nodes, weights * dens

    nodes, inner_w = masses_of(inner[:-1], inner[1:])
    outer = [masses_of(np.linspace(a, b, 2001)[:-1], np.linspace(a, b, 2001)[1:])[1].sum() if b > a else 0.0 for a, b in ((-1.0, lo), (hi, 1.0))]
    edges = np.concatenate([[-1.0], inner, [1.0]])
    masses = np.concatenate([[outer[0]], inner_w.sum(1), [outer[1]]])
    total = masses.sum()
    return edges, masses / total, nodes.reshape(-1), inner_w.reshape(-1) / total


@pytest.mark.parametrize(
    "case",
    ["smooth_order_6", "random_order_14", "bumps_order_14", "edge_peak", "huge_parameters", "huge_parameters_order_14"],
)
def test_one_dimensional_densities(case):
    rng = np.random.default_rng(7)
    if case == "smooth_order_6":
        fam = MePolyFamily(1, 6, dtype=torch.float64)
        lam = bounded_params(rng, fam.num_params, 10.0)
    elif case == "random_order_14":
        fam = MePolyFamily(1, 14, dtype=torch.float64)
        lam = bounded_params(rng, fam.num_params, 15.0)
    elif case == "bumps_order_14":
        fam = MePolyFamily(1, 14, dtype=torch.float64)
        lam = project_energy(_bumps_log_density([[-0.7], [0.1], [0.9]], 0.05, 30.0), fam)
    elif case == "edge_peak":  # mass piled against x = 1
        fam = MePolyFamily(1, 6, dtype=torch.float64)
        lam = torch.zeros(fam.num_params, dtype=torch.float64)
        lam[1], lam[6] = 20.0, 5.0
    elif case == "huge_parameters":  # |lambda| ~ 1e3: far narrower than the sampler's first cells
        fam = MePolyFamily(1, 6, dtype=torch.float64)
        lam = torch.from_numpy(rng.standard_normal(fam.num_params) * 1e3)
    else:  # an interior peak of width ~1e-3 (Legendre coefficients of -1e4 (x - 0.3)^2 / 2 ... + P_14)
        fam = MePolyFamily(1, 14, dtype=torch.float64)
        lam = project_energy(lambda x: -3e5 * (x[:, 0] - 0.3) ** 2 + 50 * np.cos(20 * x[:, 0]), fam)
    dist = MePoly(lam, fam)
    x = sample(dist, N)
    check_samples_are_continuous(x, fam)
    if not case.startswith("huge"):
        bins = 150  # edges at multiples of 2/150: not aligned with the sampler's (Chebyshev) cells
        masses = cell_masses(dist, bins, 8)
        assert masses.sum() == pytest.approx(1.0, abs=1e-8)
        p = chi_square_pvalue(histogram(x, bins), masses)
        assert p > ALPHA, f"chi-square p-value {p:.3g}"
        check_log_prob_consistency(dist, x, masses, bins)
        return
    # huge parameters: bins on the window that holds the mass, normalized independently
    edges, masses, nodes, weights = windowed_masses_1d(dist)
    counts, _ = np.histogram(x[:, 0], bins=edges)
    p = chi_square_pvalue(counts.astype(float), masses)
    assert p > ALPHA, f"chi-square p-value {p:.3g}"
    mean = (weights * nodes).sum()
    var = (weights * (nodes - mean) ** 2).sum()
    assert x.mean() == pytest.approx(mean, abs=6 * math.sqrt(var / N))
    assert x.var() == pytest.approx(var, rel=0.02)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_parameters_2d_samples_concentrate_at_the_peak(dtype):
    # |lambda| ~ 1e4: the density is a spike; every sample must lie where the energy is within
    # a few tens of nats of its maximum (P(E_max - E > 30) ~ 31 e^-30 per sample for D = 2)
    fam = MePolyFamily(2, 6, dtype=dtype)
    lam = torch.from_numpy(np.random.default_rng(4).standard_normal(fam.num_params) * 1e4)
    dist = MePoly(lam.to(dtype), fam)
    x = sample(dist, 10_000)
    assert (np.abs(x) <= 1).all() and len(np.unique(x[:, 0])) > 9_000
    exps = fam.exponents.numpy()
    energy = features_ref(x, exps) @ lam.numpy()
    line = np.linspace(-1, 1, 801)
    grid = np.stack(np.meshgrid(line, line, indexing="ij"), -1).reshape(-1, 2)
    top = max(energy.max(), (features_ref(grid, exps) @ lam.numpy()).max())
    assert energy.min() >= top - 30 - (5.0 if dtype == torch.float32 else 0.0)  # float32 rounding of x


def test_three_dimensional_density():
    fam = MePolyFamily(3, 4, dtype=torch.float64)
    dist = MePoly(bounded_params(np.random.default_rng(3), fam.num_params, 6.0), fam)
    x = sample(dist, 300_000)
    check_samples_are_continuous(x, fam)
    masses = check_goodness_of_fit(dist, x, bins=7, points=6)
    check_log_prob_consistency(dist, x, masses, 7)


def test_batched_rows_follow_their_own_densities():
    fam = MePolyFamily(2, 5, dtype=torch.float64)
    rng = np.random.default_rng(11)
    lam = bounded_params(rng, fam.num_params, 8.0, batch=(3,))
    lam[2] = 0.0  # the uniform density in the batch
    dist = MePoly(lam, fam)
    x = dist.sample((200_000,))
    assert x.shape == (200_000, 3, 2)
    masses = cell_masses(dist, 17)
    for b in range(3):
        assert masses[b].sum() == pytest.approx(1.0, abs=1e-8)
        p = chi_square_pvalue(histogram(x[:, b].numpy(), 17), masses[b])
        assert p > ALPHA, f"row {b}: chi-square p-value {p:.3g}"
    # the rows are not interchangeable: row 0's samples do not fit row 1's density
    assert chi_square_pvalue(histogram(x[:, 0].numpy(), 17), masses[1]) < 1e-10


def test_float32_sampling_matches_the_density():
    fam = MePolyFamily(2, 6, dtype=torch.float32)
    lam = bounded_params(np.random.default_rng(5), fam.num_params, 8.0).float()
    dist = MePoly(lam, fam)
    x = sample(dist, 300_000)
    assert (np.abs(x) <= 1).all()
    masses = cell_masses(MePoly(lam.double(), MePolyFamily(2, 6, dtype=torch.float64)), 23)
    assert chi_square_pvalue(histogram(x, 23), masses) > ALPHA


def test_sample_shapes_and_edge_cases():
    fam = MePolyFamily(2, 3, quadrature="gauss_legendre:8", dtype=torch.float64)
    dist = MePoly(torch.randn(2, fam.num_params, dtype=torch.float64), fam)
    assert dist.sample().shape == (2, 2)
    assert dist.sample((0,)).shape == (0, 2, 2)
    assert dist.sample((3, 4)).shape == (3, 4, 2, 2)
    # reproducible under torch.manual_seed
    torch.manual_seed(3)
    a = dist.sample((5,))
    torch.manual_seed(3)
    assert torch.equal(a, dist.sample((5,)))
    # sampling does not build an autograd graph
    lam = torch.randn(fam.num_params, dtype=torch.float64, requires_grad=True)
    assert not MePoly(lam, fam).sample((4,)).requires_grad


def test_repeated_rows_get_independent_draws_from_their_own_density():
    """Rows with identical parameters share one envelope (a bandit's constant observation):
    each duplicate must still get its own independent draws with the right distribution."""
    from mepoly_dist import MePoly, MePolyFamily

    family = MePolyFamily(dim=2, order=4, dtype=torch.float64)
    base = torch.randn(2, family.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    rows = base[torch.tensor([0, 1, 0, 0, 1])]
    dist = MePoly(rows, family)
    x = dist.sample((20000,))  # (20000, 5, 2)
    assert x.shape == (20000, 5, 2)
    exact_mean = dist.mean  # quadrature moments, independent of the sampler
    standard_error = dist.variance.sqrt() / 20000**0.5
    assert bool(((x.mean(0) - exact_mean).abs() < 5 * standard_error).all())
    # duplicates of row 0 (columns 0, 2, 3) are uncorrelated, not copies
    for a, b in [(0, 2), (0, 3), (2, 3), (1, 4)]:
        corr = np.corrcoef(x[:, a, 0].numpy(), x[:, b, 0].numpy())[0, 1]
        assert abs(corr) < 0.04, (a, b, corr)
