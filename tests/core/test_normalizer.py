"""The streaming normalizer against plain autograd on the materialized grid, gradcheck and
finite differences (all float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mepoly_dist.testing import SMALL_RULES, features_ref, materialized
from mepoly_dist import basis as B
from mepoly_dist import make_rule
from mepoly_dist.normalizer import DEFAULT_CHUNK_SIZE, expectation, log_partition_and_entropy

TOL = dict(rtol=1e-10, atol=1e-10)


def _setup(dim, order, spec, basis="legendre"):
    """Node features from scipy (independent of mepoly_dist.basis) and the rule's log-weights."""
    rule = make_rule(spec, dim)
    exps = B.exponent_set(dim, order)
    feats = torch.from_numpy(features_ref(rule.nodes.numpy(), exps.numpy(), basis))
    return rule, feats, rule.log_weights


def _chunk(data, n):
    return data.draw(
        st.one_of(st.just(1), st.integers(2, max(2, n)), st.just(n), st.integers(n + 1, 2 * n + 7), st.just(DEFAULT_CHUNK_SIZE)),
        label="chunk",
    )


def _assert_close(actual, expected, scale=1.0):
    torch.testing.assert_close(actual, expected, rtol=TOL["rtol"], atol=TOL["atol"] * scale)


@given(
    dim=st.integers(1, 3),
    order=st.integers(0, 6),
    scale=st.floats(0.1, 20.0),
    basis=st.sampled_from(["legendre", "monomial"]),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
@settings(max_examples=100)
def test_streaming_equals_materialized_autograd(dim, order, scale, basis, batch, seed, data):
    if dim == 2 and data.draw(st.integers(0, 9), label="order 14") == 0:
        order = 14  # the README's family size, 120 parameters
    spec = data.draw(st.sampled_from(SMALL_RULES[dim]), label="rule")
    if data.draw(st.booleans(), label="as rule object"):
        spec = make_rule(spec, dim)  # a QuadratureRule object instead of its spec string
    rule, feats, logw = _setup(dim, order, spec, basis)
    chunk = _chunk(data, rule.num_nodes)
    g = torch.Generator().manual_seed(seed)
    F = feats.shape[1]
    lam = (scale * torch.randn(batch, F, dtype=torch.float64, generator=g)).requires_grad_(True)
    lam_ref = lam.detach().clone().requires_grad_(True)
    size = 1.0 + scale * F  # energies are bounded by sum |lambda_i|
    gA, gH = torch.randn(2, batch, dtype=torch.float64, generator=g)
    v = torch.randn(batch, F, dtype=torch.float64, generator=g)

    A, H = log_partition_and_entropy(lam, feats, logw, chunk)
    A_ref, H_ref, mu_ref, p_ref = materialized(lam_ref, feats, logw)
    _assert_close(A, A_ref, size)
    _assert_close(H, H_ref, size)
    # the discrete entropy never exceeds log(sum w) = D log 2
    assert (H <= dim * np.log(2) + 1e-10 * size).all()

    # first derivatives of an arbitrary combination of A and H (one backward pass)
    loss, loss_ref = (gA * A + gH * H).sum(), (gA * A_ref + gH * H_ref).sum()
    (grad,) = torch.autograd.grad(loss, lam, create_graph=True)
    (grad_ref,) = torch.autograd.grad(loss_ref, lam_ref, create_graph=True)
    _assert_close(grad, grad_ref, size)
    # the cheap (saved-tensor) backward gives the same first derivatives
    A2, H2 = log_partition_and_entropy(lam, feats, logw, chunk)
    (grad_cheap,) = torch.autograd.grad((gA * A2 + gH * H2).sum(), lam)
    _assert_close(grad_cheap, grad_ref, size)
    # Hessian-vector product (TRPO-style double backward)
    (hvp,) = torch.autograd.grad((grad * v).sum(), lam, retain_graph=True)
    (hvp_ref,) = torch.autograd.grad((grad_ref * v).sum(), lam_ref, retain_graph=True)
    _assert_close(hvp, hvp_ref, size**2)

    # moments E[phi] and the expectation of other node values, with their derivatives
    mu = expectation(lam, feats, logw, chunk=chunk)
    _assert_close(mu, mu_ref, size)
    values = torch.cat([rule.nodes, rule.nodes**2, torch.sin(3 * rule.nodes)], -1)
    ev = expectation(lam, feats, logw, values, chunk=chunk)
    ev_ref = p_ref @ values
    _assert_close(ev, ev_ref)
    c = torch.randn(ev.shape, dtype=torch.float64, generator=g)
    (ge,) = torch.autograd.grad((ev * c).sum(), lam, create_graph=True)
    (ge_ref,) = torch.autograd.grad((ev_ref * c).sum(), lam_ref, create_graph=True)
    _assert_close(ge, ge_ref, size)
    (he,) = torch.autograd.grad((ge * v).sum(), lam)
    (he_ref,) = torch.autograd.grad((ge_ref * v).sum(), lam_ref)
    _assert_close(he, he_ref, size**2)


@pytest.mark.parametrize("chunk", [1, 3, 20, 25, 26, 1000])
def test_order_14_two_dimensional_streaming(chunk):
    # the README's family size (120 parameters) on a small grid, several chunkings
    rule, feats, logw = _setup(2, 14, "gauss_legendre:5" if chunk == 1 else "gauss_legendre:15")
    g = torch.Generator().manual_seed(chunk)
    lam = (3.0 * torch.randn(4, 120, dtype=torch.float64, generator=g)).requires_grad_(True)
    lam_ref = lam.detach().clone().requires_grad_(True)
    A, H = log_partition_and_entropy(lam, feats, logw, chunk)
    A_ref, H_ref, mu_ref, _ = materialized(lam_ref, feats, logw)
    _assert_close(A, A_ref, 100)
    _assert_close(H, H_ref, 100)
    (gr,) = torch.autograd.grad((A - 0.3 * H).sum(), lam, create_graph=True)
    (gr_ref,) = torch.autograd.grad((A_ref - 0.3 * H_ref).sum(), lam_ref, create_graph=True)
    _assert_close(gr, gr_ref, 100)
    v = torch.randn(4, 120, dtype=torch.float64, generator=g)
    _assert_close(torch.autograd.grad((gr * v).sum(), lam)[0], torch.autograd.grad((gr_ref * v).sum(), lam_ref)[0], 1e4)


def test_batch_shapes():
    rule, feats, logw = _setup(2, 3, "gauss_legendre:6")
    F = feats.shape[1]
    lam = torch.randn(2, 3, F, dtype=torch.float64)
    A, H = log_partition_and_entropy(lam, feats, logw, 7)
    assert A.shape == H.shape == (2, 3)
    assert expectation(lam, feats, logw, chunk=7).shape == (2, 3, F)
    assert expectation(lam, feats, logw, rule.nodes, chunk=7).shape == (2, 3, 2)
    A0, H0 = log_partition_and_entropy(lam[1, 2], feats, logw, 7)
    assert A0.shape == H0.shape == ()
    torch.testing.assert_close(A0, A[1, 2], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(H0, H[1, 2], rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------- gradcheck
@pytest.fixture(scope="module")
def small_problem():
    rule, feats, logw = _setup(2, 3, "gauss_legendre:5")  # 25 nodes, 10 features
    g = torch.Generator().manual_seed(7)
    lam = (1.5 * torch.randn(2, feats.shape[1], dtype=torch.float64, generator=g)).requires_grad_(True)
    return rule, feats, logw, lam


@pytest.mark.parametrize("chunk", [1, 4, 25, 64])
def test_gradcheck_and_gradgradcheck_of_log_partition_and_entropy(small_problem, chunk):
    _, feats, logw, lam = small_problem
    fn = lambda l: log_partition_and_entropy(l, feats, logw, chunk)
    assert torch.autograd.gradcheck(fn, (lam,), eps=1e-6, atol=1e-7, rtol=1e-6)
    assert torch.autograd.gradgradcheck(fn, (lam,), eps=1e-6, atol=1e-7, rtol=1e-6)
    # each output separately, too (a zero cotangent for the other one)
    for k in range(2):
        f = lambda l, k=k: log_partition_and_entropy(l, feats, logw, chunk)[k]
        assert torch.autograd.gradgradcheck(f, (lam,), eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("chunk", [1, 6, 64])
def test_gradcheck_and_gradgradcheck_of_expectation(small_problem, chunk):
    rule, feats, logw, lam = small_problem
    for values in (None, torch.cat([rule.nodes, rule.nodes**3], -1)):
        fn = lambda l: expectation(l, feats, logw, values, chunk=chunk)
        assert torch.autograd.gradcheck(fn, (lam,), eps=1e-6, atol=1e-7, rtol=1e-6)
        assert torch.autograd.gradgradcheck(fn, (lam,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradient_of_log_partition_is_the_mean_by_finite_differences():
    rule, feats, logw = _setup(3, 3, "gauss_legendre:6")
    g = torch.Generator().manual_seed(3)
    lam = 2.0 * torch.randn(feats.shape[1], dtype=torch.float64, generator=g)
    A = lambda l: log_partition_and_entropy(l, feats, logw, 50)[0]
    mu = expectation(lam, feats, logw, chunk=50)
    h = 1e-5
    fd = torch.stack([(A(lam + h * e) - A(lam - h * e)) / (2 * h) for e in torch.eye(len(lam), dtype=torch.float64)])
    torch.testing.assert_close(mu, fd, rtol=0, atol=1e-8)
    lam_ = lam.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(A(lam_), lam_)
    torch.testing.assert_close(grad, fd, rtol=0, atol=1e-8)
    # the first moment of the constant feature is 1
    assert mu[0].item() == pytest.approx(1.0, abs=1e-14)
    # and the entropy gradient is -Cov[phi] lambda, by finite differences of H
    H = lambda l: log_partition_and_entropy(l, feats, logw, 50)[1]
    fdH = torch.stack([(H(lam + h * e) - H(lam - h * e)) / (2 * h) for e in torch.eye(len(lam), dtype=torch.float64)])
    (gH,) = torch.autograd.grad(H(lam_), lam_)
    torch.testing.assert_close(gH, fdH, rtol=0, atol=1e-7)


def test_hessian_of_log_partition_is_the_feature_covariance():
    rule, feats, logw = _setup(2, 4, "composite_gauss_legendre:3x3")
    g = torch.Generator().manual_seed(11)
    lam = 2.0 * torch.randn(feats.shape[1], dtype=torch.float64, generator=g)
    hess = torch.autograd.functional.hessian(lambda l: log_partition_and_entropy(l, feats, logw, 5)[0], lam)
    # numpy covariance of the features under the normalized node masses
    s = feats.numpy() @ lam.numpy() + logw.numpy()
    p = np.exp(s - s.max())
    p /= p.sum()
    cov = np.cov(feats.numpy().T, aweights=p, bias=True)
    np.testing.assert_allclose(hess.numpy(), cov, rtol=0, atol=1e-11)
    # Hessian of the entropy against the materialized reference
    hessH = torch.autograd.functional.hessian(lambda l: log_partition_and_entropy(l, feats, logw, 5)[1], lam)
    hessH_ref = torch.autograd.functional.hessian(lambda l: materialized(l[None], feats, logw)[1][0], lam)
    torch.testing.assert_close(hessH, hessH_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [1e2, 1e4])
def test_huge_parameters_stay_finite(dtype, magnitude):
    rule, feats, logw = _setup(2, 6, "gauss_legendre:30")
    feats, logw = feats.to(dtype), logw.to(dtype)
    g = torch.Generator().manual_seed(5)
    lam = (magnitude * torch.randn(3, feats.shape[1], generator=g)).to(dtype).requires_grad_(True)
    A, H = log_partition_and_entropy(lam, feats, logw)
    mu = expectation(lam, feats, logw)
    assert torch.isfinite(A).all() and torch.isfinite(H).all() and torch.isfinite(mu).all()
    (grad,) = torch.autograd.grad((A + H + mu.sum(-1)).sum(), lam, create_graph=True)
    assert torch.isfinite(grad).all()
    (hvp,) = torch.autograd.grad(grad.sum(), lam)
    assert torch.isfinite(hvp).all()
    if dtype == torch.float64:
        A_ref, H_ref, mu_ref, _ = materialized(lam.detach(), feats, logw)
        torch.testing.assert_close(A, A_ref, rtol=1e-12, atol=0)
        torch.testing.assert_close(mu, mu_ref, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(H, H_ref, rtol=1e-6, atol=1e-6 * magnitude)
    else:
        A_ref = torch.logsumexp(lam.detach().double() @ feats.double().t() + logw.double(), -1)
        torch.testing.assert_close(A.double(), A_ref, rtol=1e-5, atol=0)


def test_float32_matches_float64_reference():
    rule, feats, logw = _setup(2, 5, "gauss_legendre:10")
    g = torch.Generator().manual_seed(9)
    lam64 = 2.0 * torch.randn(3, feats.shape[1], dtype=torch.float64, generator=g)
    A_ref, H_ref, mu_ref, _ = materialized(lam64, feats, logw)
    A, H = log_partition_and_entropy(lam64.float(), feats.float(), logw.float(), 9)
    assert A.dtype == torch.float32
    torch.testing.assert_close(A.double(), A_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(H.double(), H_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(expectation(lam64.float(), feats.float(), logw.float(), chunk=9).double(), mu_ref, rtol=1e-4, atol=1e-5)


def test_duplicate_rows_groups_every_copy_of_a_row_wherever_it_sits_in_the_batch():
    # equal rows at any positions of a batch form one group: as many groups as torch.unique(dim=0)
    # finds, for many batch shapes (a BLAS matrix-vector projection split equal rows by position on
    # some CPUs, so the batch computed some rows twice)
    from mepoly_dist.normalizer import duplicate_rows

    gen = torch.Generator().manual_seed(0)
    for B in (2, 3, 5, 8, 13, 31, 64, 257):
        for F in (1, 6, 15, 45, 165):
            for dtype in (torch.float32, torch.float64):
                base = torch.randn(1, F, generator=gen, dtype=dtype)
                others = torch.randn(B, F, generator=gen, dtype=dtype)
                copies = torch.rand(B, generator=gen) < 0.5
                lam = torch.where(copies[:, None], base.expand(B, F), others)
                distinct, inverse = duplicate_rows(lam, share=1.0)
                assert distinct.shape[0] == torch.unique(lam, dim=0).shape[0], (B, F, dtype)
                assert torch.equal(distinct[inverse], lam)


def test_duplicate_rows_are_computed_once_with_exact_per_row_gradients(monkeypatch):
    # a contextual bandit's batch: one parameter row repeated, plus two others.  The results and
    # every row's own gradient (first and second order) equal those of the rows computed one by
    # one, although the forward pass visits the nodes for 3 distinct rows only.
    from mepoly_dist import normalizer

    rule = make_rule("gauss_legendre:12", 2)
    exps = B.exponent_set(2, 4)
    feats = torch.from_numpy(features_ref(rule.nodes.numpy(), exps.numpy()))
    logw = rule.log_weights
    gen = torch.Generator().manual_seed(0)
    base, others = torch.randn(1, feats.shape[1], generator=gen, dtype=torch.float64), torch.randn(2, feats.shape[1], generator=gen, dtype=torch.float64)
    lam = torch.cat([base.expand(6, -1), others, base.expand(2, -1)]).requires_grad_()
    w, v = torch.rand(10, generator=gen, dtype=torch.float64), torch.rand(10, generator=gen, dtype=torch.float64)
    seen = []
    online = normalizer._online_pass
    monkeypatch.setattr(normalizer, "_online_pass", lambda rows, *a, **k: seen.append(rows.shape[0]) or online(rows, *a, **k))
    A, H = log_partition_and_entropy(lam, feats, logw)
    assert seen == [3]
    (grad,) = torch.autograd.grad((w * A + v * H).sum(), lam, create_graph=True)
    (hvp,) = torch.autograd.grad((grad * lam.detach()).sum(), lam)
    for i in range(10):  # one row at a time: nothing to deduplicate
        row = lam.detach()[i : i + 1].clone().requires_grad_()
        A_i, H_i = log_partition_and_entropy(row, feats, logw)
        torch.testing.assert_close(A[i : i + 1], A_i, rtol=0, atol=1e-12)
        torch.testing.assert_close(H[i : i + 1], H_i, rtol=0, atol=1e-12)
        (g_i,) = torch.autograd.grad((w[i] * A_i + v[i] * H_i).sum(), row, create_graph=True)
        torch.testing.assert_close(grad[i : i + 1], g_i, rtol=0, atol=1e-12)
        (h_i,) = torch.autograd.grad((g_i * row.detach()).sum(), row)
        torch.testing.assert_close(hvp[i : i + 1], h_i, rtol=0, atol=1e-11)
