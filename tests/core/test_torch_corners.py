"""MePoly in the corners of ``torch.distributions``: ``torch.func`` transforms (grad, jacrev,
vmap), empty batches, pickling and checkpoints, a family that moves to another dtype after a
distribution was built on it, the missing ``rsample`` / ``cdf`` / ``icdf``, and non-finite
parameters.

The references are independent of what each test exercises: loops of ordinary
``torch.autograd.grad``, plain autograd on the materialized ``batch x nodes`` matrix with scipy's
features (``_reference.materialized`` / ``features_ref``), distributions on a family that never
moved or was never pickled, and energies on a fine grid.
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch
from torch.distributions import biject_to, kl_divergence
from torch.func import grad, jacrev, vmap

from mepoly_dist.testing import features_ref, materialized
from mepoly_dist import BlockMePoly, BlockMePolyFamily, MePoly, MePolyFamily, normalizer
from mepoly_dist.quadrature import QuadratureRule

OPERATORS = ["dense", "kronecker"]
#: float64 agreement between two exact computations of the same quantity
TIGHT = dict(rtol=1e-10, atol=1e-12)


def _family(node_operator="auto", dtype=torch.float64, order=5, spec="gauss_legendre:14"):
    """A small 2-D family (20 parameters, 196 nodes): fast, and both operators apply."""
    return MePolyFamily(2, order, quadrature=spec, dtype=dtype, node_operator=node_operator)


def _params(family, batch, scale=1.5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*batch, family.num_params, generator=generator, dtype=torch.float64)).to(family.dtype)


def _points(batch, dim=2, seed=1, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(*batch, dim, generator=generator, dtype=torch.float64) - 1).to(dtype)


def _scipy_features(family, x: torch.Tensor) -> torch.Tensor:
    """phi(x) from scipy's orthogonal polynomials (not mepoly_dist.basis)."""
    flat = x.detach().reshape(-1, family.dim).numpy()
    feats = features_ref(flat, family.exponents.numpy(), family.basis)
    return torch.from_numpy(feats).reshape(*x.shape[:-1], family.num_params)


def _materialized_on(family, lam):
    """A, H, E[phi] and the node masses by plain autograd on the whole ``batch x nodes`` matrix,
    with scipy's features at the family's nodes."""
    feats = _scipy_features(family, family.quadrature.nodes)
    return materialized(lam, feats, family.quadrature.log_weights)


# --------------------------------------------------------------------------- torch.func
@pytest.mark.parametrize("node_operator", OPERATORS)
def test_func_grad_of_entropy_equals_autograd_and_the_materialized_gradient(node_operator):
    fam = _family(node_operator)
    lam = _params(fam, (3,))

    def total_entropy(params):
        return MePoly(params, fam).entropy().sum()

    by_func = grad(total_entropy)(lam)
    leaf = lam.clone().requires_grad_(True)
    (by_autograd,) = torch.autograd.grad(total_entropy(leaf), leaf)
    torch.testing.assert_close(by_func, by_autograd, **TIGHT)
    leaf = lam.clone().requires_grad_(True)
    (reference,) = torch.autograd.grad(_materialized_on(fam, leaf)[1].sum(), leaf)
    torch.testing.assert_close(by_func, reference, **TIGHT)


@pytest.mark.parametrize("node_operator", OPERATORS)
def test_per_sample_gradients_by_vmap_jacrev_equal_a_loop_of_autograd(node_operator):
    """Per-sample gradients of log_prob, the use case of torch.func (one row per sample); the
    gradient of a log-density is also phi(x) - E[phi], checked against scipy's features."""
    fam = _family(node_operator)
    lam, actions = _params(fam, (6,)), _points((6,))

    def log_prob(params, action):
        return MePoly(params, fam).log_prob(action)

    per_sample = vmap(jacrev(log_prob))(lam, actions)
    loop = []
    for params, action in zip(lam, actions):
        leaf = params.clone().requires_grad_(True)
        loop.append(torch.autograd.grad(log_prob(leaf, action), leaf)[0])
    torch.testing.assert_close(per_sample, torch.stack(loop), **TIGHT)
    score = _scipy_features(fam, actions) - _materialized_on(fam, lam)[2]
    torch.testing.assert_close(per_sample, score, **TIGHT)


@pytest.mark.parametrize("tile_elements", [None, 1], ids=["one_tile", "tile_per_member"])
def test_vmap_over_an_ensemble_of_heads_equals_a_loop_of_autograd(tile_elements, monkeypatch):
    """An ensemble: each member has its own batch of rows; vmap over the member axis (leading or
    not) of a loss with log_prob, entropy and KL gives each member's gradient.  The vmap rule
    folds the members into the rows and streams them in one tile, or (tiles shrunk to one
    element) in one tile per member."""
    if tile_elements is not None:
        monkeypatch.setattr(normalizer, "STEP_ELEMENTS", tile_elements)
    fam = _family("kronecker")
    members = _params(fam, (4, 3))  # 4 members x 3 rows
    target = _params(fam, (3,), seed=5)
    actions = _points((3,))

    def member_loss(params):
        dist = MePoly(params, fam)
        return (dist.log_prob(actions) + 0.1 * dist.entropy() - kl_divergence(dist, MePoly(target, fam))).sum()

    loop = []
    for params in members:
        leaf = params.clone().requires_grad_(True)
        loop.append(torch.autograd.grad(member_loss(leaf), leaf)[0])
    loop = torch.stack(loop)
    torch.testing.assert_close(vmap(grad(member_loss))(members), loop, **TIGHT)
    torch.testing.assert_close(vmap(grad(member_loss), in_dims=1)(members.transpose(0, 1)), loop, **TIGHT)
    # nested vmap of the values: members x rows, one problem per row
    nested = vmap(vmap(lambda params: MePoly(params, fam).entropy()))(members)
    torch.testing.assert_close(nested, _materialized_on(fam, members)[1], **TIGHT)


@pytest.mark.parametrize("node_operator", OPERATORS)
def test_jacobian_of_the_mean_and_hessian_of_the_log_partition_by_torch_func(node_operator):
    r"""d E[x] / d lambda = Cov[x, phi] and d^2 A / d lambda^2 = Cov[phi] (the expectation and
    covariance stream functions under jacrev and vmap), against the materialized masses."""
    fam = _family(node_operator)
    lam = _params(fam, (3,), scale=1.0)
    mean_jacobians = vmap(jacrev(lambda params: MePoly(params, fam).mean))(lam)  # (3, D, F)
    hessian = jacrev(jacrev(lambda params: MePoly(params, fam).log_partition))(lam[1])  # (F, F)
    _, _, mu, p = _materialized_on(fam, lam)
    phi = _scipy_features(fam, fam.quadrature.nodes)
    x = fam.quadrature.nodes
    centred_x = x[None] - (p @ x)[:, None]  # (3, N, D)
    centred_phi = phi[None] - mu[:, None]  # (3, N, F)
    torch.testing.assert_close(mean_jacobians, torch.einsum("bn,bnd,bnf->bdf", p, centred_x, centred_phi), **TIGHT)
    torch.testing.assert_close(hessian, torch.einsum("n,nf,ng->fg", p[1], centred_phi[1], centred_phi[1]), **TIGHT)


# --------------------------------------------------------------------------- empty batches
#: blocks of sizes 2, 1, 2: the two 2-D blocks share one family
_BLOCK_FAMILY = BlockMePolyFamily([2, 1, 2], order=3, dtype=torch.float64)
#: the two distribution classes, each with a family (read-only in the tests that use them)
_HEADS = {"mepoly": (MePoly, _family("kronecker")), "blocks": (BlockMePoly, _BLOCK_FAMILY)}


def _head(name, params, validate_args=True):
    cls, family = _HEADS[name]
    return cls(params, family, validate_args=validate_args)


@pytest.mark.parametrize("head", sorted(_HEADS))
@pytest.mark.parametrize("batch_shape", [(0,), (2, 0)])
def test_empty_batch_gives_empty_results_of_the_right_shapes_and_gradients(head, batch_shape):
    family = _HEADS[head][1]
    lam = torch.zeros(*batch_shape, family.num_params, dtype=torch.float64, requires_grad=True)
    dist, other = _head(head, lam), _head(head, lam + 1.0)
    batch_shape, dim = torch.Size(batch_shape), family.dim
    value = torch.zeros(batch_shape + (dim,), dtype=torch.float64)
    scalars = [dist.log_prob(value), dist.entropy(), dist.log_partition, kl_divergence(dist, other)]
    points = [dist.mean, dist.variance, dist.mode, dist.sample()]
    for result in scalars:
        assert result.shape == batch_shape
    for result in points:
        assert result.shape == batch_shape + (dim,)
    assert dist.sample((3,)).shape == (3,) + batch_shape + (dim,)
    if head == "mepoly":
        assert dist.moments.shape == batch_shape + (family.num_params,)
    total = sum(result.sum() for result in scalars) + dist.mean.sum() + dist.variance.sum()
    (first,) = torch.autograd.grad(total, lam, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), lam, allow_unused=True, materialize_grads=True)
    assert first.shape == second.shape == lam.shape


# --------------------------------------------------------------------------- pickling
def _spread_of_entropies(family, params):
    """A few numbers that depend on every derived tensor of the family (normalizer, moments)."""
    dist = MePoly(params, family)
    return torch.cat([dist.entropy(), dist.log_partition, dist.mean.reshape(-1)])


def test_family_pickles_to_its_configuration_and_rebuilds_the_same_numbers():
    """The README head (D = 2, order 14, 6,400 nodes) pickled ~9.5 MB fresh and ~25 MB once
    sample() and mode had filled its caches; now its configuration only."""
    fam = MePolyFamily(2, 14)
    params = _params(fam, (4,), scale=0.5)
    dist = MePoly(params, fam)
    dist.sample(), dist.mode  # fill the sampler and mode-search caches
    fam.eval()
    blob = pickle.dumps(fam)
    assert len(blob) < 10_000
    restored = pickle.loads(blob)
    assert restored.config == fam.config and restored.chunk_size == fam.chunk_size
    assert (restored.dtype, restored.device, restored.training) == (torch.float32, fam.device, False)
    assert restored.node_operator.kind == fam.node_operator.kind == "kronecker"
    for name in ("node_features", "nodes", "log_weights", "axis_table", "exponents"):
        assert torch.equal(getattr(restored, name), getattr(fam, name)), name
    assert torch.equal(_spread_of_entropies(restored, params), _spread_of_entropies(fam, params))
    assert restored._sampler_cache == {}


def test_pickle_keeps_dtype_chunk_size_operator_choice_and_custom_rules():
    nodes, weights = np.polynomial.legendre.leggauss(9)
    grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
    custom = QuadratureRule(grid, np.outer(weights, weights).ravel())  # no spec rebuilds it
    for fam in (
        MePolyFamily(2, 4, quadrature="gauss_legendre:12", dtype=torch.float64, chunk_size=7, node_operator="dense"),
        MePolyFamily(2, 4, quadrature=custom, dtype=torch.float64),
    ):
        blob = pickle.dumps(fam)
        assert len(blob) < 10_000  # the custom rule's 81 nodes and weights included
        restored = pickle.loads(blob)
        assert (restored.dtype, restored.chunk_size) == (torch.float64, fam.chunk_size)
        assert restored.node_operator.kind == fam.node_operator.kind
        assert torch.equal(restored.quadrature.nodes, fam.quadrature.nodes)
        params = _params(fam, (2,))
        assert torch.equal(_spread_of_entropies(restored, params), _spread_of_entropies(fam, params))


def test_deepcopy_is_an_independent_family_with_the_same_numbers():
    fam = _family("kronecker", dtype=torch.float32)
    clone = copy.deepcopy(fam)
    assert clone is not fam and clone.node_features.data_ptr() != fam.node_features.data_ptr()
    clone.double()
    assert fam.dtype == torch.float32 and clone.dtype == torch.float64
    params = _params(clone, (3,))
    torch.testing.assert_close(_spread_of_entropies(clone, params), _spread_of_entropies(_family("kronecker"), params), **TIGHT)
    blocks = copy.deepcopy(_BLOCK_FAMILY)  # blocks of one configuration still share one family
    assert blocks.blocks[0] is blocks.blocks[2] is blocks.groups[0][0] and blocks.blocks[0] is not _BLOCK_FAMILY.blocks[0]
    assert len(pickle.dumps(_BLOCK_FAMILY)) < 10_000


def test_policy_checkpoint_with_a_family_loads_with_weights_only(tmp_path):
    fam = MePolyFamily(2, 6)
    policy = torch.nn.Module()
    policy.head = torch.nn.Linear(3, fam.num_params)
    policy.family = fam
    torch.save(policy.state_dict(), tmp_path / "policy.pt")
    torch.save(fam.state_dict(), tmp_path / "family.pt")
    assert torch.load(tmp_path / "family.pt", weights_only=True) == {}
    fresh = torch.nn.Module()
    fresh.head = torch.nn.Linear(3, fam.num_params)
    fresh.family = MePolyFamily(2, 6)
    fresh.load_state_dict(torch.load(tmp_path / "policy.pt", weights_only=True))  # strict: same keys
    obs = torch.randn(5, 3)
    actions = _points((5,), dtype=torch.float32)
    with torch.no_grad():
        expected = MePoly(policy.head(obs), policy.family).log_prob(actions)
        torch.testing.assert_close(MePoly(fresh.head(obs), fresh.family).log_prob(actions), expected, rtol=0, atol=0)
    # the whole module pickles small too (its family as configuration)
    torch.save(policy, tmp_path / "module.pt")
    assert (tmp_path / "module.pt").stat().st_size < 100_000
    loaded = torch.load(tmp_path / "module.pt", weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(MePoly(loaded.head(obs), loaded.family).log_prob(actions), expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- the family moves
@pytest.mark.parametrize("node_operator", OPERATORS)
def test_distribution_built_before_the_family_moves_keeps_working(node_operator):
    fam = _family(node_operator, dtype=torch.float32)
    never_moved = _family(node_operator, dtype=torch.float32)
    lam = _params(fam, (3,)).requires_grad_(True)
    other = _params(fam, (3,), seed=3)
    actions = _points((3,), dtype=torch.float32)
    dist, other_dist = MePoly(lam, fam), MePoly(other, fam)  # built, nothing evaluated yet
    fam.double()
    assert fam.node_features.dtype == fam.log_weights.dtype == fam.nodes.dtype == torch.float64
    assert fam.node_operator_for(torch.float64, "cpu") is fam.node_operator
    assert fam.node_operator_for(torch.float32, "cpu") is fam.node_operator_for(torch.float32, torch.device("cpu"))
    ref, ref_other = MePoly(lam, never_moved), MePoly(other, never_moved)
    pairs = {
        "log_prob": (dist.log_prob(actions), ref.log_prob(actions)),
        "entropy": (dist.entropy(), ref.entropy()),
        "mean": (dist.mean, ref.mean),
        "variance": (dist.variance, ref.variance),
        "moments": (dist.moments, ref.moments),
        "kl": (kl_divergence(dist, other_dist), kl_divergence(ref, ref_other)),
    }
    for name, (moved, reference) in pairs.items():
        assert moved.dtype == torch.float32, name
        torch.testing.assert_close(moved, reference, rtol=0, atol=0, msg=name)
    (g_moved,) = torch.autograd.grad(sum(v[0].sum() for v in pairs.values()), lam)
    (g_ref,) = torch.autograd.grad(sum(v[1].sum() for v in pairs.values()), lam)
    torch.testing.assert_close(g_moved, g_ref, rtol=0, atol=0)
    # sampling and the mode search run in the family's new dtype, results in the parameters'
    samples = dist.sample((20,))
    assert samples.dtype == torch.float32 and samples.shape == (20, 3, 2) and samples.abs().max() <= 1
    # the same maximum as on the family that never moved (positions may differ by float32 rounding)
    mode, ref_mode = dist.mode, ref.mode
    assert mode.dtype == torch.float32
    energy = lambda points: (lam.detach().double() * _scipy_features(fam, points.double())).sum(-1)
    torch.testing.assert_close(energy(mode), energy(ref_mode), rtol=0, atol=1e-5)
    assert len(pickle.dumps(fam)) < 10_000  # the served float32 copies are not pickled
    fam.float()  # back: the buffers serve float32 again
    assert fam.node_operator_for(torch.float32, "cpu") is fam.node_operator
    torch.testing.assert_close(MePoly(lam.detach(), fam).entropy(), ref.entropy(), rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_distribution_built_on_the_cpu_keeps_working_after_the_family_moves_to_cuda():
    fam = _family("kronecker", dtype=torch.float32)
    reference = _family("kronecker", dtype=torch.float32)
    lam = _params(fam, (3,))
    dist = MePoly(lam, fam)
    fam.to("cuda")
    assert fam.node_operator_for(torch.float32, "cuda") is fam.node_operator
    torch.testing.assert_close(dist.entropy(), MePoly(lam, reference).entropy())
    assert dist.sample().device.type == "cpu" and dist.mode.device.type == "cpu"
    on_cuda = MePoly(lam.cuda(), fam)
    torch.testing.assert_close(on_cuda.entropy().cpu(), MePoly(lam, reference).entropy(), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- rsample, cdf, icdf
@pytest.mark.parametrize("head", sorted(_HEADS))
def test_rsample_cdf_and_icdf_raise_saying_why_and_what_instead(head):
    family = _HEADS[head][1]
    dist = _head(head, torch.zeros(2, family.num_params, dtype=torch.float64))
    value = torch.zeros(2, family.dim, dtype=torch.float64)
    assert not dist.has_rsample
    with pytest.raises(NotImplementedError, match=r"rejection sampling.*not differentiable.*log_prob.*PPO.*sample\(\)"):
        dist.rsample()
    with pytest.raises(NotImplementedError, match=r"no closed form.*sample\(\)"):
        dist.cdf(value)
    with pytest.raises(NotImplementedError, match=r"closed-form CDF.*sample\(\)"):
        dist.icdf(value)
    # the support is still torch's cube constraint, with its transforms
    y = biject_to(dist.support)(torch.randn(4, family.dim, dtype=torch.float64))
    assert dist.support.check(y).all()


# --------------------------------------------------------------------------- non-finite parameters
@pytest.mark.parametrize("node_operator", OPERATORS)
def test_non_finite_parameters_give_nan_rows_not_plausible_values(node_operator):
    fam = _family(node_operator)
    lam = _params(fam, (6,))
    bad = lam.clone()
    bad[1, 3], bad[2, 0], bad[3, 7], bad[4] = math.nan, math.inf, -math.inf, math.nan
    good, broken = [0, 5], [1, 2, 3, 4]
    with pytest.raises(ValueError):
        MePoly(bad, fam, validate_args=True)
    dist = MePoly(bad, fam, validate_args=False)
    clean = MePoly(lam[good], fam)
    actions = _points((6,))
    pairs = {
        "log_prob": (dist.log_prob(actions), clean.log_prob(actions[good])),
        "entropy": (dist.entropy(), clean.entropy()),
        "log_partition": (dist.log_partition, clean.log_partition),
        "mean": (dist.mean, clean.mean),
        "mode": (dist.mode, clean.mode),
    }
    for name, (values, reference) in pairs.items():
        assert torch.isnan(values[broken]).all(), name
        # (the mode search stops when every row of its batch has settled: agreement to its tolerance)
        torch.testing.assert_close(values[good], reference, rtol=0, atol=1e-6 if name == "mode" else 1e-12, msg=name)
    # the finite rows' modes are the maxima of the energy: none of a fine grid beats them
    line = torch.linspace(-1, 1, 201, dtype=torch.float64)
    grid = torch.cartesian_prod(line, line)
    grid_best = (lam[good] @ _scipy_features(fam, grid).t()).amax(-1)
    mode_energy = (lam[good] * _scipy_features(fam, pairs["mode"][0][good])).sum(-1)
    assert (mode_energy >= grid_best - 1e-9).all()
    samples = dist.sample((40,))
    assert torch.isnan(samples[:, broken]).all()
    assert torch.isfinite(samples[:, good]).all() and samples[:, good].abs().max() <= 1


def test_non_finite_block_parameters_give_nan_in_their_block_only():
    lam = torch.zeros(2, _BLOCK_FAMILY.num_params, dtype=torch.float64)
    second_block = _BLOCK_FAMILY.first_param_indices()[1]
    lam[1, second_block + 1] = math.nan  # block 2 (coordinate 2) of row 1
    dist = BlockMePoly(lam, _BLOCK_FAMILY, validate_args=False)
    for points in (dist.mode, dist.sample((5,))[0]):
        assert torch.isnan(points[1, 2]) and torch.isfinite(points[0]).all()
        assert torch.isfinite(points[1, [0, 1, 3, 4]]).all()
    assert torch.isnan(dist.entropy()[1]) and dist.entropy()[0].item() == pytest.approx(5 * math.log(2), abs=1e-12)
