"""The sum-factorized (Kronecker) node-feature operator against the dense one (float64):
the operator's two products, the normalizer's values and first and second derivatives, the
family's choice of operator and its device/dtype plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mepoly_dist.testing import features_ref, gauss_legendre_grid
from mepoly_dist import MePoly, MePolyFamily, make_rule
from mepoly_dist.basis import exponent_set
from mepoly_dist.node_features import DenseNodeFeatures, KroneckerNodeFeatures
from mepoly_dist.normalizer import expectation, log_partition_and_entropy

# every tensor-product rule, small enough for the per-node Python loop of gradgradcheck
TENSOR_RULES = {
    1: ["gauss_legendre:40", "trapezoid:41", "composite_gauss_legendre:8x4"],
    2: ["gauss_legendre:12", "trapezoid:15", "composite_gauss_legendre:4x3"],
    3: ["gauss_legendre:6", "trapezoid:6", "composite_gauss_legendre:2x3"],
}
ORDERS = {1: 14, 2: 6, 3: 4}
CASES = [(dim, spec, basis) for dim, specs in TENSOR_RULES.items() for spec in specs for basis in ("legendre", "monomial")]
# relative tolerance between the two operators: both are float64 sums of the same terms
TOL = dict(rtol=1e-12, atol=1e-12)


def _families(dim, spec, basis, order=None):
    order = ORDERS[dim] if order is None else order
    kw = dict(basis=basis, quadrature=spec, dtype=torch.float64)
    return MePolyFamily(dim, order, node_operator="kronecker", **kw), MePolyFamily(dim, order, node_operator="dense", **kw)


def _params(num, batch, scale, seed):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, num, dtype=torch.float64, generator=g) / num**0.5


def _close(actual, expected, size=1.0):
    torch.testing.assert_close(actual, expected, rtol=TOL["rtol"], atol=TOL["atol"] * size)


# --------------------------------------------------------------------------- the operator
@pytest.mark.parametrize("dim, spec, basis", CASES)
def test_kronecker_products_equal_dense_products_on_every_block(dim, spec, basis):
    kron, dense = _families(dim, spec, basis)
    op = kron.node_operator
    assert isinstance(op, KroneckerNodeFeatures) and isinstance(dense.node_operator, DenseNodeFeatures)
    # the operator's matrix is the feature matrix at the rule's nodes (scipy, independent of the package)
    rule = make_rule(spec, dim)
    ref = features_ref(rule.nodes.numpy(), kron.exponents.numpy(), basis)
    np.testing.assert_allclose(op.dense().numpy(), ref, rtol=1e-13, atol=1e-13)
    feats = dense.node_features
    g = torch.Generator().manual_seed(dim)
    coef = torch.randn(3, op.num_features, dtype=torch.float64, generator=g)
    prepared = op.prepare(coef)
    for chunk in (1, op.slab, 2 * op.slab + 1, op.num_nodes):
        blocks = op.blocks(chunk)
        assert blocks[0].start == 0 and blocks[-1].stop == op.num_nodes
        for block in blocks:
            assert (block.stop - block.start) % op.slab == 0
            e = op.energies(prepared, block)
            _close(e, coef @ feats[block].t(), 10.0)
            q = torch.randn(3, block.stop - block.start, dtype=torch.float64, generator=g)
            _close(op.moments(q, block), q @ feats[block], 10.0)
            # adjoint pair: <q, c Phi^T> = <q Phi, c>
            torch.testing.assert_close((q * e).sum(), (op.moments(q, block) * coef).sum(), rtol=1e-12, atol=1e-10)


def test_kronecker_blocks_are_whole_slabs():
    fam = MePolyFamily(3, 2, quadrature="gauss_legendre:5", dtype=torch.float64, node_operator="kronecker")
    op = fam.node_operator
    assert op.slab == 25 and op.num_nodes == 125
    assert op.block_size(1) == 25 and op.block_size(60) == 50 and op.block_size(10**6) == 125
    assert [b.stop - b.start for b in op.blocks(60)] == [50, 50, 25]
    with pytest.raises(ValueError, match="slabs"):
        op.energies(op.prepare(torch.zeros(1, fam.num_params, dtype=torch.float64)), slice(0, 30))


# --------------------------------------------------------------------------- the normalizer
@pytest.mark.parametrize("dim, spec, basis", CASES)
def test_normalizer_with_kronecker_equals_dense(dim, spec, basis):
    kron, dense = _families(dim, spec, basis)
    F = kron.num_params
    scale = 6.0
    lam = _params(F, 4, scale, seed=CASES.index((dim, spec, basis))).requires_grad_(True)
    lam_d = lam.detach().clone().requires_grad_(True)
    size = 1.0 + scale
    g = torch.Generator().manual_seed(1)
    gA, gH = torch.randn(2, 4, dtype=torch.float64, generator=g)
    v = torch.randn(4, F, dtype=torch.float64, generator=g)
    op = kron.node_operator
    for chunk, rows in ((1, None), (2 * op.slab, 3), (op.num_nodes, 1)):
        A, H = log_partition_and_entropy(lam, op, kron.log_weights, chunk, rows)
        A_d, H_d = log_partition_and_entropy(lam_d, dense.node_features, dense.log_weights, chunk, rows)
        _close(A, A_d, size)
        _close(H, H_d, size)
        # first derivatives, cheap saved-tensor backward
        (gr,) = torch.autograd.grad((gA * A + gH * H).sum(), lam, retain_graph=True)
        (gr_d,) = torch.autograd.grad((gA * A_d + gH * H_d).sum(), lam_d, retain_graph=True)
        _close(gr, gr_d, size)
        # first derivatives with a graph, and the Hessian-vector product (TRPO's double backward)
        (gr,) = torch.autograd.grad((gA * A + gH * H).sum(), lam, create_graph=True)
        (gr_d,) = torch.autograd.grad((gA * A_d + gH * H_d).sum(), lam_d, create_graph=True)
        _close(gr, gr_d, size)
        (hvp,) = torch.autograd.grad((gr * v).sum(), lam)
        (hvp_d,) = torch.autograd.grad((gr_d * v).sum(), lam_d)
        _close(hvp, hvp_d, size**2)
        # moments and other node values, with first and second derivatives (third moments)
        values = torch.cat([kron.nodes, kron.nodes**2, torch.sin(3 * kron.nodes)], -1)
        for vals in (None, values):
            ev = expectation(lam, op, kron.log_weights, vals, chunk, rows)
            ev_d = expectation(lam_d, dense.node_features, dense.log_weights, vals, chunk, rows)
            _close(ev, ev_d, size)
            c = torch.randn(ev.shape, dtype=torch.float64, generator=g)
            (ge,) = torch.autograd.grad((ev * c).sum(), lam, create_graph=True)
            (ge_d,) = torch.autograd.grad((ev_d * c).sum(), lam_d, create_graph=True)
            _close(ge, ge_d, size)
            (he,) = torch.autograd.grad((ge * v).sum(), lam)
            (he_d,) = torch.autograd.grad((ge_d * v).sum(), lam_d)
            _close(he, he_d, size**2)
    # the entropy identity H = A - lambda . mu holds on the Kronecker path
    mu = expectation(lam.detach(), op, kron.log_weights)
    _close(H.detach(), A.detach() - (lam.detach() * mu).sum(-1), size * F)


@pytest.mark.parametrize("dim, spec", [(1, "trapezoid:9"), (2, "composite_gauss_legendre:2x3"), (3, "gauss_legendre:4")])
@pytest.mark.parametrize("basis", ["legendre", "monomial"])
def test_gradcheck_and_gradgradcheck_on_the_kronecker_path(dim, spec, basis):
    fam = MePolyFamily(dim, 3, basis=basis, quadrature=spec, dtype=torch.float64, node_operator="kronecker")
    op, logw = fam.node_operator, fam.log_weights
    lam = _params(fam.num_params, 2, 4.0, seed=dim).requires_grad_(True)
    kw = dict(eps=1e-6, atol=1e-7, rtol=1e-6)
    for chunk in (1, op.num_nodes):
        fn = lambda l: log_partition_and_entropy(l, op, logw, chunk)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (lam,), **kw)
        assert torch.autograd.gradgradcheck(fn, (lam,), **kw)
        for values in (None, fam.nodes**3):
            fn = lambda l, values=values: expectation(l, op, logw, values, chunk)  # noqa: E731
            assert torch.autograd.gradcheck(fn, (lam,), **kw)
            assert torch.autograd.gradgradcheck(fn, (lam,), **kw)


def test_order_14_two_dimensional_family_kronecker_equals_dense():
    # the README's family (120 parameters) on the default 80 x 80 rule, through MePoly
    kron, dense = _families(2, None, "legendre", order=14)
    assert kron.quadrature.spec == "gauss_legendre:80"
    lam = _params(120, 5, 20.0, seed=14)
    p, q = MePoly(lam, kron), MePoly(lam, dense)
    _close(p.log_partition, q.log_partition, 20.0)
    _close(p.entropy(), q.entropy(), 20.0)
    _close(p.moments, q.moments, 20.0)
    _close(p.mean, q.mean, 20.0)
    _close(p.variance, q.variance, 20.0)
    other = _params(120, 5, 20.0, seed=15)
    _close(torch.distributions.kl_divergence(p, MePoly(other, kron)), torch.distributions.kl_divergence(q, MePoly(other, dense)), 400.0)
    # a batch larger than one tile of the stream (rows split across steps)
    big = _params(120, 700, 5.0, seed=16)
    assert kron.tile_for(700)[0] < 700
    _close(MePoly(big, kron).entropy(), MePoly(big, dense).entropy(), 5.0)


# --------------------------------------------------------------------------- the family
def test_family_chooses_the_operator():
    # tensor rules from D = 2 on: Kronecker; D = 1 (no saving) and Sobol': dense
    assert MePolyFamily(2, 14).node_operator.kind == "kronecker"
    assert MePolyFamily(3, 8).node_operator.kind == "kronecker"
    assert MePolyFamily(2, 14, quadrature="trapezoid:256").node_operator.kind == "kronecker"
    assert MePolyFamily(2, 4, quadrature="composite_gauss_legendre:4x3").node_operator.kind == "kronecker"
    assert MePolyFamily(1, 14).node_operator.kind == "dense"
    assert MePolyFamily(2, 14, quadrature="sobol:256").node_operator.kind == "dense"
    assert MePolyFamily(4, 4).node_operator.kind == "kronecker"
    assert MePolyFamily(5, 4).node_operator.kind == "dense"  # five small products cost more than they save
    assert MePolyFamily(5, 2, node_operator="kronecker").node_operator.kind == "kronecker"
    assert MePolyFamily(6, 4).node_operator.kind == "dense"  # Sobol' by default
    assert MePolyFamily(2, 14, node_operator="dense").node_operator.kind == "dense"
    assert MePolyFamily(1, 14, node_operator="kronecker").node_operator.kind == "kronecker"
    with pytest.raises(ValueError, match="tensor-product"):
        MePolyFamily(2, 4, quadrature="sobol:64", node_operator="kronecker")
    with pytest.raises(ValueError, match="node_operator"):
        MePolyFamily(2, 4, node_operator="sparse")
    # the choice is not part of the configuration: the families are the same
    a, b = MePolyFamily(2, 3, quadrature="gauss_legendre:6"), MePolyFamily(2, 3, quadrature="gauss_legendre:6", node_operator="dense")
    assert a.config == b.config and a.same_family(b)


def test_tensor_rules_list_the_products_of_their_axis_nodes():
    for dim, specs in TENSOR_RULES.items():
        for spec in specs:
            rule = make_rule(spec, dim)
            x = rule.axis_nodes.numpy()
            grid = np.stack(np.meshgrid(*([x] * dim), indexing="ij"), -1).reshape(-1, dim)
            np.testing.assert_array_equal(rule.nodes.numpy(), grid)
    assert make_rule("sobol:64", 2).axis_nodes is None
    nodes, _ = gauss_legendre_grid(2, 7)
    np.testing.assert_allclose(make_rule("gauss_legendre:7", 2).nodes.numpy(), nodes, atol=1e-15)


def test_kronecker_family_moves_with_to_and_keeps_its_table_out_of_state_dict():
    fam = MePolyFamily(2, 6, quadrature="gauss_legendre:20")  # default dtype: float32
    assert fam.node_operator.kind == "kronecker" and fam.axis_table.dtype == torch.float32
    assert len(fam.state_dict()) == 0
    assert fam.node_operator.table is fam.axis_table
    fam.float().double()  # rebuilt from the float64 master, not up-cast from float32
    assert fam.node_operator.table is fam.axis_table and fam.axis_table.dtype == torch.float64
    x1, _ = np.polynomial.legendre.leggauss(20)
    ref = np.polynomial.legendre.legvander(x1, 6)
    np.testing.assert_allclose(fam.axis_table.numpy(), ref, rtol=0, atol=1e-14)
    np.testing.assert_allclose(fam.node_operator.dense().numpy(), fam.node_features.numpy(), rtol=0, atol=1e-14)
    lam = _params(fam.num_params, 3, 5.0, seed=2)
    dense = MePolyFamily(2, 6, quadrature="gauss_legendre:20", dtype=torch.float64, node_operator="dense")
    _close(MePoly(lam, fam).entropy(), MePoly(lam, dense).entropy(), 5.0)
    fam.float()
    assert fam.node_operator.table.dtype == torch.float32
    assert MePoly(lam.float(), fam).entropy().dtype == torch.float32
    assert set(fam.state_dict()) == set()


@pytest.mark.parametrize("node_operator", ["dense", "kronecker"])
def test_empty_batch(node_operator):
    fam = MePolyFamily(3, 3, quadrature="gauss_legendre:4", dtype=torch.float64, node_operator=node_operator)
    lam = torch.zeros(0, fam.num_params, dtype=torch.float64, requires_grad=True)
    A, H = log_partition_and_entropy(lam, fam.node_operator, fam.log_weights, 16)
    ev = expectation(lam, fam.node_operator, fam.log_weights, fam.nodes, 16, rows=3)
    assert A.shape == H.shape == (0,) and ev.shape == (0, 3)
    (g,) = torch.autograd.grad(A.sum() + H.sum() + ev.sum(), lam, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), lam)
    assert g.shape == h.shape == (0, fam.num_params)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_row_kronecker_products_equal_dense_products_at_each_rows_nodes(dim):
    """The per-row operator (box rules) against the stored feature matrix of every row's own nodes,
    including the stacked batches the normalizer's covariance pass sends (two weight sets)."""
    from mepoly_dist.node_features import RowKroneckerNodeFeatures
    from mepoly_dist.zoom import BoxRule

    order, points, rows = 4, 5, 3
    exps = exponent_set(dim, order)
    gen = torch.Generator().manual_seed(0)
    lo = -torch.rand(rows, dim, generator=gen, dtype=torch.float64)
    hi = torch.rand(rows, dim, generator=gen, dtype=torch.float64)
    rule = BoxRule(lo, hi, points, exps, order, "legendre")
    op = rule.operator
    assert isinstance(op, RowKroneckerNodeFeatures)
    grids = torch.meshgrid(*[torch.arange(points)] * dim, indexing="ij")
    index = torch.stack([g.reshape(-1) for g in grids], -1)
    nodes = torch.stack([rule.axis_nodes[:, d, index[:, d]] for d in range(dim)], -1)  # (rows, N, D)
    dense = torch.from_numpy(features_ref(nodes.numpy(), exps.numpy()))  # (rows, N, F)
    lam = torch.randn(rows, exps.shape[0], generator=gen, dtype=torch.float64)
    for block in op.blocks(points ** (dim - 1)):
        expected = torch.einsum("bf,bnf->bn", lam, dense[:, block])
        torch.testing.assert_close(op.energies(op.prepare(lam), block), expected)
        weights = torch.rand(2 * rows, block.stop - block.start, generator=gen, dtype=torch.float64)
        stacked = torch.cat([dense[:, block]] * 2)
        torch.testing.assert_close(op.moments(weights, block), torch.einsum("bn,bnf->bf", weights, stacked))
