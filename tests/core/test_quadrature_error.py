"""The quadrature's per-row error estimate, the refinement of unresolved rows and the refusal of
rules too coarse for the order, against an independent float64 reference (numpy's Legendre
Vandermonde matrices on a fine Gauss-Legendre grid; nothing of the package's normalizer)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre as nplegendre

from mepoly_dist import MePoly, MePolyFamily, QuadratureWarning
from mepoly_dist.basis import exponent_set

ORDER = 14


def reference(lam: np.ndarray, order: int, points: int = 1500) -> tuple[float, float]:
    """``(A, H)`` of a 2-D row on a ``points x points`` Gauss-Legendre grid, energies
    ``V Lambda V^T`` from numpy's Legendre Vandermonde matrix (1500 and 3000 points agree to 1e-10
    on these rows)."""
    exps = exponent_set(2, order).numpy()
    coef = np.zeros((order + 1, order + 1))
    coef[exps[:, 0], exps[:, 1]] = lam
    x, w = nplegendre.leggauss(points)
    vander = nplegendre.legvander(x, order)
    energy = vander @ coef @ vander.T
    s = energy + np.log(w)[:, None] + np.log(w)[None, :]
    top = s.max()
    p = np.exp(s - top)
    A = top + np.log(p.sum())
    return A, A - (p * energy).sum() / p.sum()


def rows(scale: float, count: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(count, exponent_set(2, ORDER).shape[0], generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_error_estimate_bounds_the_true_error(scale):
    family = MePolyFamily(2, ORDER, quadrature="gauss_legendre:80", dtype=torch.float64)
    lam = rows(scale, 6)
    dist = MePoly(lam, family)
    truth = np.array([reference(row.numpy(), ORDER)[0] for row in lam])
    error = np.abs(dist.log_partition.numpy() - truth)
    assert np.all(dist.quadrature_error.numpy() >= error - 1e-12), (dist.quadrature_error, error)


def test_sharp_rows_are_recomputed_to_the_reference():
    """c = 10: the default 80 x 80 rule alone is off by up to ~1e-2 nats here; the rows it does
    not resolve are recomputed (zoomed onto their mass, refined) and match the reference."""
    family = MePolyFamily(2, ORDER, dtype=torch.float64)
    lam = rows(10.0, 6, seed=1)
    fixed = MePoly(lam, MePolyFamily(2, ORDER, quadrature="gauss_legendre:80", dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuadratureWarning)
        dist = MePoly(lam, family, validate_args=False)
        A, H = dist.log_partition.numpy(), dist.entropy().numpy()
    truth = np.array([reference(row.numpy(), ORDER, 2000) for row in lam])
    fixed_error = np.abs(fixed.log_partition.numpy() - truth[:, 0])
    assert fixed_error.max() > 1e-3  # the rows are sharper than the 80 x 80 rule resolves
    assert np.abs(A - truth[:, 0]).max() <= 1e-6
    assert np.abs(H - truth[:, 1]).max() <= 1e-5


def test_gradient_of_recomputed_rows_matches_finite_differences_of_the_reference():
    family = MePolyFamily(2, ORDER, dtype=torch.float64)
    lam = rows(10.0, 6, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuadratureWarning)
        dist = MePoly(lam.clone().requires_grad_(), family, validate_args=False)
        fixed = MePoly(lam, MePolyFamily(2, ORDER, quadrature="gauss_legendre:80", dtype=torch.float64))
        row = int(fixed.quadrature_error.argmax())  # a row the family's own rule does not resolve
        dist.log_partition[row].backward()
    grad = dist.natural_params.grad[row].numpy()
    direction = np.random.default_rng(0).standard_normal(grad.shape)
    h = 1e-4
    plus = reference(lam[row].numpy() + h * direction, ORDER, 2000)[0]
    minus = reference(lam[row].numpy() - h * direction, ORDER, 2000)[0]
    assert abs(grad @ direction - (plus - minus) / (2 * h)) <= 1e-5 * (1 + abs(grad @ direction))


def test_unresolved_rows_warn_with_count_and_error_and_raise_under_validate_args():
    family = MePolyFamily(2, ORDER, dtype=torch.float64)
    lam = torch.cat([rows(0.3, 2), rows(100.0, 3, seed=2)])
    with pytest.warns(QuadratureWarning, match=r"of (\d+) of 5 rows.*largest estimated error"):
        dist = MePoly(lam, family, validate_args=False)
        dist.entropy()
    assert torch.all(dist.quadrature_error[:2] < family.tolerance_for())
    with pytest.raises(ValueError, match="could not be computed to the tolerance"):
        MePoly(lam, family, validate_args=True).log_partition


def test_a_chosen_rule_is_used_as_is_with_its_estimate():
    """A rule the user names is that rule's quadrature measure (no refinement, no warning)."""
    family = MePolyFamily(2, ORDER, quadrature="gauss_legendre:40", dtype=torch.float64)
    dist = MePoly(rows(10.0, 3), family)
    assert torch.all(dist.quadrature_nodes == 1600)
    assert torch.all(dist.quadrature_error > 0)


@pytest.mark.parametrize(
    "dim, order, spec, needed",
    [(2, 14, "gauss_legendre:2", "order \\+ 1 = 15"), (2, 8, "trapezoid:8", "order \\+ 1 = 9"), (3, 6, "composite_gauss_legendre:2x3", "= 7")],
)
def test_a_rule_too_coarse_for_the_order_is_refused(dim, order, spec, needed):
    with pytest.raises(ValueError, match=needed):
        MePolyFamily(dim, order, quadrature=spec)


def test_a_point_set_smaller_than_the_features_is_refused():
    with pytest.raises(ValueError, match="fewer than the 120 features"):
        MePolyFamily(2, 14, quadrature="sobol:64")


def test_orders_above_the_default_points_get_enough_points():
    family = MePolyFamily(4, 10)  # the default 9 points per axis would not resolve order 10
    assert family.quadrature.points_per_axis == 11


def test_zoomed_rows_are_twice_differentiable():
    """The box is a constant for autograd: first and second derivatives of A and H on a zoomed row
    agree with finite differences (the box moves with lambda only at the rounding level of A)."""
    family = MePolyFamily(2, 6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    rows = 30.0 * torch.randn(8, family.num_params, generator=gen, dtype=torch.float64)
    dist = MePoly(rows, family, validate_args=False)
    dist.log_partition
    area = (dist._boxes[1] - dist._boxes[0]).prod(-1)
    assert float(area.min()) < 0.1  # a row whose mass the zoom boxed in
    lam = rows[int(area.argmin())][None]

    def f(x):
        d = MePoly(x, family, validate_args=False)
        return d.log_partition + d.entropy()

    torch.autograd.gradcheck(f, (lam.clone().requires_grad_(),), atol=1e-5, rtol=1e-4)
    torch.autograd.gradgradcheck(f, (lam.clone().requires_grad_(),), atol=1e-4, rtol=1e-3)


def test_mean_and_variance_of_zoomed_rows_against_numpy_on_a_wider_box():
    """Moments of zoomed rows (the box rule's P_1, P_2 columns) against E[x], E[x^2] from a 400^2
    Gauss-Legendre rule in numpy on a box twice as wide around the same mass."""
    family = MePolyFamily(2, 6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    rows = 30.0 * torch.randn(8, family.num_params, generator=gen, dtype=torch.float64)
    dist = MePoly(rows, family, validate_args=False)
    mean, variance = dist.mean.numpy(), dist.variance.numpy()
    lo, hi = dist._boxes
    zoomed = ((hi - lo).prod(-1) < 0.1).nonzero().flatten().tolist()
    assert zoomed
    exps = exponent_set(2, 6).numpy()
    x, w = nplegendre.leggauss(400)
    for i in zoomed:
        centre, half = (lo[i] + hi[i]).numpy() / 2, (hi[i] - lo[i]).numpy()  # twice the half-width
        a, b = np.clip(centre - half, -1, 1), np.clip(centre + half, -1, 1)
        nodes = [(a[d] + b[d]) / 2 + (b[d] - a[d]) / 2 * x for d in range(2)]
        coef = np.zeros((7, 7))
        coef[exps[:, 0], exps[:, 1]] = rows[i].numpy()
        energy = nplegendre.legvander(nodes[0], 6) @ coef @ nplegendre.legvander(nodes[1], 6).T
        p = np.exp(energy - energy.max()) * np.outer(w * (b[0] - a[0]), w * (b[1] - a[1]))
        p /= p.sum()
        m = np.array([(p.sum(1) * nodes[0]).sum(), (p.sum(0) * nodes[1]).sum()])
        v = np.array([(p.sum(1) * nodes[0] ** 2).sum(), (p.sum(0) * nodes[1] ** 2).sum()]) - m**2
        np.testing.assert_allclose(mean[i], m, rtol=0, atol=1e-9)
        np.testing.assert_allclose(variance[i], v, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_smooth_rows_stay_on_the_screening_rule_and_sharp_ones_leave_it(dtype):
    # order 14, D = 2: the screening rule has 48^2 nodes, the default 80^2; a smooth row keeps
    # the screening result (within the tolerance of the reference), a sharp one is recomputed,
    # and the mean of every row (E_p[x], on the rule that normalized it) matches the reference
    from mepoly_dist.testing import adaptive_reference

    fam = MePolyFamily(2, 14).to(dtype)
    screen = fam.screening_family()
    assert screen.quadrature.points_per_axis == 48 and fam.quadrature.points_per_axis == 80
    gen = torch.Generator().manual_seed(3)
    lam = torch.cat([0.2 * torch.randn(1, fam.num_params, generator=gen, dtype=torch.float64),
                     10.0 * torch.randn(1, fam.num_params, generator=gen, dtype=torch.float64)])
    dist = MePoly(lam.to(dtype), fam)
    nodes = dist.quadrature_nodes
    assert nodes[0] == 48**2 and nodes[1] >= 80**2, nodes
    tolerance = fam.tolerance_for(dtype)
    for b in range(2):
        ref = adaptive_reference(lam[b].numpy(), 2, 14)
        assert abs(dist.log_partition[b].item() - ref.A) <= max(tolerance, 1e-5 if dtype == torch.float32 else 0), b
        mean_ref = ref.moments[[list(map(tuple, fam.exponents.tolist())).index(e) for e in ((1, 0), (0, 1))]]
        np.testing.assert_allclose(dist.mean[b].double().numpy(), mean_ref, rtol=0, atol=1e-4 if dtype == torch.float32 else 1e-6)
    assert MePoly(lam[:1].to(dtype), fam).quadrature_nodes.tolist() == [48**2]  # every row screened, no row zoomed
    assert screen is fam.screening_family()  # cached
    assert MePolyFamily(2, 14, quadrature="gauss_legendre:80").screening_family() is None  # a rule the user chose is used as is
