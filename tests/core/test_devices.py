"""The distribution core on every device this machine has: CPU always, CUDA where it exists
(the ``device`` fixture; ``benchmarks/gpu_check.sh`` runs this module on a GPU machine).

Every result computed on the device is checked against an independent float64 computation on
the CPU (the adaptive cubature of ``_reference``, numpy features on a fine grid, scipy's
chi-square test), and every output stays on the device and in the family's dtype."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

from mepoly_dist.testing import adaptive_reference, features_ref
from mepoly_dist import MePoly, MePolyFamily
from mepoly_dist.fit import project_energy
from test_sampling import _bumps_log_density, check_goodness_of_fit


def _rows(order: int, scales, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    F = MePolyFamily(2, order).num_params
    return torch.cat([c * torch.randn(1, F, dtype=torch.float64, generator=gen) for c in scales])


@pytest.mark.parametrize("order", [8, 14])
def test_log_partition_entropy_and_gradient_against_the_reference(device, order):
    # smooth rows (the default rule) and peaked ones (zoomed and refined rows), float64
    lam = _rows(order, [0.3, 3.0, 30.0])
    fam = MePolyFamily(2, order).to(device=device, dtype=torch.float64)
    params = lam.to(device, copy=True).requires_grad_()
    dist = MePoly(params, fam)
    A, H = dist.log_partition, dist.entropy()
    A.sum().backward()
    assert A.device.type == device.type and params.grad.device.type == device.type
    for b in range(lam.shape[0]):
        ref = adaptive_reference(lam[b].numpy(), 2, order)
        assert abs(A[b].item() - ref.A) < 1e-6, (b, A[b].item() - ref.A)
        assert abs(H[b].item() - ref.H) < 1e-5, (b, H[b].item() - ref.H)
        # the gradient of the log-partition is the mean of the features (eq. 3.3)
        np.testing.assert_allclose(params.grad[b].cpu().numpy(), ref.moments, rtol=0, atol=1e-6)
    assert (dist.quadrature_error <= fam.tolerance_for(torch.float64)).all()


def test_kl_on_the_device_against_a_fine_cpu_rule(device):
    fam = MePolyFamily(2, 6).to(device=device, dtype=torch.float64)
    p, q = _rows(6, [1.0, 1.0], seed=3).to(device)
    kl = kl_divergence(MePoly(p, fam), MePoly(q, fam))
    assert kl.device.type == device.type
    # KL(p || q) = E_p[log p - log q] on a 400 x 400 Gauss-Legendre rule with numpy features
    t, w = np.polynomial.legendre.leggauss(400)
    nodes = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    weights = np.outer(w, w).ravel()
    phi = features_ref(nodes, fam.exponents.cpu().numpy())
    ep, eq = phi @ p.cpu().numpy(), phi @ q.cpu().numpy()
    log_zp, log_zq = math.log(weights @ np.exp(ep)), math.log(weights @ np.exp(eq))
    density = weights * np.exp(ep - log_zp)
    expected = density @ ((ep - log_zp) - (eq - log_zq))
    assert abs(kl.item() - expected) < 1e-9


def test_samples_on_the_device_follow_the_density(device):
    fam = MePolyFamily(2, 8, dtype=torch.float64)
    lam = project_energy(_bumps_log_density([(-0.7, -0.7), (0.7, -0.7), (0.0, 0.8)], 0.15, 40.0), fam)
    on_device = MePoly(lam.to(device), fam.to(device))
    x = on_device.sample((200_000,))
    assert x.device.type == device.type and x.dtype == torch.float64 and x.shape == (200_000, 2)
    check_goodness_of_fit(MePoly(lam, MePolyFamily(2, 8, dtype=torch.float64)), x.cpu().numpy(), bins=30)


def test_mode_on_the_device_beats_a_fine_grid(device):
    fam = MePolyFamily(2, 14).to(device)
    lam = _rows(14, [3.0] * 4, seed=5).float()
    mode = MePoly(lam.to(device), fam).mode
    assert mode.device.type == device.type and mode.dtype == torch.float32
    line = np.linspace(-1, 1, 801)
    grid = np.stack(np.meshgrid(line, line, indexing="ij"), -1).reshape(-1, 2)
    exps, lam64 = fam.exponents.cpu().numpy(), lam.double().numpy()
    best = (features_ref(grid, exps) @ lam64.T).max(0)
    at_mode = (features_ref(mode.cpu().double().numpy(), exps) * lam64).sum(-1)
    assert (at_mode >= best - 1e-4 * (1 + np.abs(best))).all(), at_mode - best


def test_empty_and_non_finite_rows_on_the_device(device):
    fam = MePolyFamily(2, 4).to(device)
    empty = MePoly(torch.zeros(0, fam.num_params, device=device), fam)
    assert empty.entropy().shape == (0,) and empty.sample((3,)).shape == (3, 0, 2) and empty.mode.shape == (0, 2)
    lam = torch.zeros(2, fam.num_params, device=device)
    lam[1, 0] = float("nan")
    dist = MePoly(lam, fam, validate_args=False)
    assert torch.isnan(dist.mode[1]).all() and torch.isfinite(dist.mode[0]).all()
    assert torch.isnan(dist.sample()[1]).all()
