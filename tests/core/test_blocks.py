"""BlockMePoly (products of MePoly blocks) against independent computations: numpy tensor
Gauss-Legendre integrals over the whole cube, scipy's 1-D integration, and sample statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate
from torch.distributions import kl_divergence

from mepoly_dist import BlockMePoly, BlockMePolyFamily, MePoly, MePolyFamily
from mepoly_dist.blocks import parse_blocks


@pytest.fixture(autouse=True)
def float64_default():
    """These tests compare against float64 integrals: float64 default dtype, restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _family():
    return BlockMePolyFamily([2, 1], order=[6, 8], dtype=torch.float64)


def _params(family, batch=(3,), scale=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*batch, family.num_params, generator=generator)


def _cube_grid(dim, n=40):
    """Tensor Gauss-Legendre nodes and weights on [-1, 1]^dim from numpy (independent of the package's rules)."""
    x, w = np.polynomial.legendre.leggauss(n)
    mesh = np.stack(np.meshgrid(*([x] * dim), indexing="ij"), -1).reshape(-1, dim)
    weights = np.prod(np.stack(np.meshgrid(*([w] * dim), indexing="ij"), -1).reshape(-1, dim), axis=1)
    return torch.as_tensor(mesh), torch.as_tensor(weights)


def test_density_integrates_to_one_and_entropy_matches_integral():
    family = _family()
    dist = BlockMePoly(_params(family), family)
    nodes, weights = _cube_grid(3)
    logp = dist.log_prob(nodes[:, None, :])  # (N, 3)
    p = logp.exp()
    mass = (weights[:, None] * p).sum(0)
    assert torch.allclose(mass, torch.ones(3), atol=1e-8)
    entropy = -(weights[:, None] * p * logp).sum(0)
    assert torch.allclose(dist.entropy(), entropy, atol=1e-7)


def test_log_prob_is_sum_of_independent_blocks():
    family = _family()
    lam = _params(family)
    x = torch.rand(5, 3, 3) * 2 - 1
    lam_a, lam_b = lam.split(family.param_sizes, -1)
    expected = MePoly(lam_a, MePolyFamily(2, 6)).log_prob(x[..., :2]) + MePoly(lam_b, MePolyFamily(1, 8)).log_prob(x[..., 2:])
    assert torch.allclose(BlockMePoly(lam, family).log_prob(x), expected, atol=1e-12)


def test_kl_matches_numerical_integral_and_vanishes_on_equal_parameters():
    family = _family()
    p = BlockMePoly(_params(family, seed=1), family)
    q = BlockMePoly(_params(family, seed=2), family)
    nodes, weights = _cube_grid(3)
    lp, lq = p.log_prob(nodes[:, None, :]), q.log_prob(nodes[:, None, :])
    expected = (weights[:, None] * lp.exp() * (lp - lq)).sum(0)
    assert torch.allclose(kl_divergence(p, q), expected, atol=1e-7)
    assert torch.allclose(kl_divergence(p, p), torch.zeros(3), atol=1e-10)


def test_kl_gradient_matches_finite_differences():
    family = BlockMePolyFamily([1, 1], order=4, dtype=torch.float64)
    lam_q = _params(family, batch=(), seed=3)

    def kl(lam_p):
        return kl_divergence(BlockMePoly(lam_p, family), BlockMePoly(lam_q, family))

    assert torch.autograd.gradcheck(kl, (_params(family, batch=(), seed=4).requires_grad_(True),))


def test_samples_follow_each_block_marginal():
    """Kolmogorov-Smirnov distance of the 1-D block's samples against its CDF from scipy.quad, and the
    2-D block's sample mean against its quadrature mean."""
    family = _family()
    lam = _params(family, batch=(), scale=1.5, seed=5)
    dist = BlockMePoly(lam, family)
    torch.manual_seed(0)
    samples = dist.sample((20_000,))
    assert samples.shape == (20_000, 3)
    assert samples.abs().max() <= 1.0

    lam_1d = lam.split(family.param_sizes)[1]
    one_d = MePoly(lam_1d, MePolyFamily(1, 8))
    density = lambda t: float(one_d.log_prob(torch.tensor([[t]])).exp())
    x = np.sort(samples[:, 2].numpy())
    checkpoints = np.linspace(-0.95, 0.95, 20)
    cdf = np.array([integrate.quad(density, -1.0, c)[0] for c in checkpoints])
    empirical = np.searchsorted(x, checkpoints) / len(x)
    assert np.max(np.abs(cdf - empirical)) < 0.02  # KS critical value at alpha 1e-3 for n = 20,000 is ~0.014 over the whole line

    nodes, weights = _cube_grid(2, 80)
    p2 = MePoly(lam.split(family.param_sizes)[0], MePolyFamily(2, 6)).log_prob(nodes).exp()
    mean2 = (weights[:, None] * p2[:, None] * nodes).sum(0)
    assert torch.allclose(samples[:, :2].mean(0), mean2, atol=0.02)


def test_mode_mean_and_shapes():
    family = _family()
    dist = BlockMePoly(_params(family, batch=(4, 2)), family)
    assert dist.batch_shape == (4, 2) and dist.event_shape == (3,)
    assert dist.mode.shape == (4, 2, 3) and dist.mean.shape == (4, 2, 3) and dist.variance.shape == (4, 2, 3)
    assert dist.sample((5,)).shape == (5, 4, 2, 3)
    assert dist.expand((3, 4, 2)).log_prob(torch.zeros(3, 4, 2, 3)).shape == (3, 4, 2)
    # the mode has the highest density among random points
    x = torch.rand(256, 4, 2, 3) * 2 - 1
    assert (dist.log_prob(dist.mode) >= dist.log_prob(x).amax(0) - 1e-9).all()


def test_uniform_entropy_and_bad_input():
    family = BlockMePolyFamily([2, 2], order=6)
    dist = BlockMePoly(torch.zeros(family.num_params), family, validate_args=True)
    assert torch.allclose(dist.entropy(), torch.tensor(4 * np.log(2.0)))
    with pytest.raises(ValueError, match="within the support"):
        dist.log_prob(torch.tensor([0.0, 0.0, 1.5, 0.0]))
    with pytest.raises(ValueError, match="last dimension 56"):
        BlockMePoly(torch.zeros(55), family)
    with pytest.raises(ValueError, match="natural_params"):
        BlockMePoly(torch.full((family.num_params,), float("nan")), family, validate_args=True)
    with pytest.raises(ValueError, match="sum to the action dimension 4"):
        parse_blocks([2, 1], 4)
    assert parse_blocks(3, 8) == [3, 3, 2] and parse_blocks(1, 2) == [1, 1]


def test_blocks_of_one_configuration_are_batched_and_reassembled_in_order():
    """Blocks [2, 1, 2] at one order: the two 2-D blocks form one group (one shared family, one
    batched MePoly); log_prob, entropy, KL, moments and samples still equal those of the blocks
    taken one by one (independent MePoly objects on fresh families), in block order."""
    family = BlockMePolyFamily([2, 1, 2], order=5, dtype=torch.float64)
    assert family.blocks[0] is family.blocks[2] and family.blocks[1] is not family.blocks[0]
    assert [indices for _, indices in family.groups] == [(0, 2), (1,)]
    lam = _params(family, batch=(3,), scale=1.5, seed=6)
    # block 2 concentrated near (-0.8, -0.8), block 0 near (0.8, 0.8): a swap would show in the samples
    exps = family.blocks[0].exponents
    pull = lambda c: 6.0 * ((exps == 1).sum(-1) == 1).to(lam) * (exps.sum(-1) == 1).to(lam) * c
    lam_0, lam_1, lam_2 = (t.clone() for t in lam.split(family.param_sizes, -1))
    lam_0 += pull(1.0)
    lam_2 += pull(-1.0)
    lam = torch.cat([lam_0, lam_1, lam_2], -1)
    singles = [MePoly(l, MePolyFamily(d, 5)) for l, d in zip((lam_0, lam_1, lam_2), (2, 1, 2))]
    dist = BlockMePoly(lam, family)

    x = torch.rand(7, 3, 5) * 2 - 1
    pieces = x.split([2, 1, 2], -1)
    assert torch.allclose(dist.log_prob(x), sum(s.log_prob(p) for s, p in zip(singles, pieces)), atol=1e-12)
    # a value with fewer batch dimensions broadcasts against the batch, as in torch.distributions
    assert torch.allclose(dist.log_prob(x[0, 0]), sum(s.log_prob(p[0, 0]) for s, p in zip(singles, pieces)), atol=1e-12)
    assert torch.allclose(dist.entropy(), sum(s.entropy() for s in singles), atol=1e-12)
    for name in ("mean", "variance", "mode"):
        assert torch.allclose(getattr(dist, name), torch.cat([getattr(s, name) for s in singles], -1), atol=1e-6), name
    other = BlockMePoly(_params(family, batch=(3,), seed=7), family)
    other_singles = [MePoly(l, MePolyFamily(d, 5)) for l, d in zip(other.natural_params.split(family.param_sizes, -1), (2, 1, 2))]
    assert torch.allclose(kl_divergence(dist, other), sum(kl_divergence(a, b) for a, b in zip(singles, other_singles)), atol=1e-10)

    torch.manual_seed(1)
    samples = dist.sample((4000,))
    assert samples.shape == (4000, 3, 5)
    expected_mean = torch.cat([s.mean for s in singles], -1)
    assert torch.allclose(samples.mean(0), expected_mean, atol=0.05)
    assert (samples[..., :2].mean((0, 1)) > 0.3).all() and (samples[..., 3:].mean((0, 1)) < -0.3).all()
