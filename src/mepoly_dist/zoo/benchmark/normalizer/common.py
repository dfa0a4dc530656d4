"""What the sections of the normalizer benchmark share: the random parameters, timing, the
implementations compared and the independent float64 reference of the log-partition."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch
from numpy.polynomial import legendre
from scipy.special import logsumexp as np_logsumexp

from mepoly_dist import MePoly, MePolyFamily, basis
from mepoly_dist.normalizer import log_partition_and_entropy

from ..results import markdown_table

__all__ = ["TOL", "NODE_BUDGET", "TARGETS", "SCALE", "md_table", "fmt_err", "fmt_t", "fmt_mib", "random_params", "timed",
           "interleaved_best", "streaming_step", "twin", "clear_twins", "streaming_dense_step", "functional_step",
           "streaming_forward", "materialized_terms", "materialized_step", "floor_step", "floor_chunked_step", "VARIANTS",
           "VARIANT_LABEL", "separable_log_partition"]

TOL = 1e-6  # the accuracy target of section 1
NODE_BUDGET = 8192
TARGETS = [("lemniscate", 0.2), ("lemniscate", 0.05), ("two_moons", 0.2), ("two_moons", 0.05)]
SCALE = 3.0  # section 2/3 random parameters: pointwise std of the energy <= SCALE (= SCALE at the corners)


# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------
def md_table(header, rows, align=None):
    return markdown_table(header, rows, align).rstrip("\n")


def fmt_err(e):
    return "0" if e == 0 else f"{e:.1e}"


def fmt_t(t):
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_mib(m):
    return f"{m:.0f} MiB" if m >= 10 else f"{m:.1f} MiB"


def random_params(dim, order, batch, gen, scale=SCALE, dtype=torch.float64):
    """``lambda_alpha ~ N(0, scale^2 / (F - 1))`` for alpha != 0, ``lambda_0 = 0``: with Legendre
    features (``|phi| <= 1``) the energy has pointwise std <= scale, equal to scale at the corners."""
    f = basis.num_features(dim, order)
    lam = torch.randn(batch, f, generator=gen, dtype=torch.float64) * (scale / math.sqrt(max(f - 1, 1)))
    lam[:, 0] = 0.0
    return lam.to(dtype)


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def interleaved_best(variants: dict, repeats: int, warmup=True):
    """Run every variant ``repeats`` times in round-robin order (so that load from other
    processes hits them alike); return ``{name: (best, median)}``."""
    if warmup:
        for fn in variants.values():
            fn()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn))
    return {name: (min(ts), float(np.median(ts))) for name, ts in times.items()}


# ----------------------------------------------------------------------------------------
# the implementations compared in the speed section (and timed in the scaling section)
# ----------------------------------------------------------------------------------------
def streaming_step(fam, lam, x):
    """The package: ``MePoly(...).log_prob(x) + entropy()``, backward."""
    lam = lam.detach().requires_grad_()
    dist = MePoly(lam, fam)
    (dist.log_prob(x) + dist.entropy()).sum().backward()
    return lam.grad


_TWINS = {}


def twin(fam, node_operator):
    """The same family with the node-feature operator forced (``"dense"`` or ``"kronecker"``)."""
    if fam.node_operator.kind == node_operator:
        return fam
    key = (id(fam), node_operator)
    if key not in _TWINS:
        _TWINS[key] = (fam, MePolyFamily(fam.dim, fam.order, fam.basis, fam.quadrature, dtype=fam.dtype, node_operator=node_operator))
    return _TWINS[key][1]



def clear_twins() -> None:
    """Forget the families :func:`twin` made (their node features hold memory)."""
    _TWINS.clear()


def streaming_dense_step(fam, lam, x):
    """``streaming_step`` with the dense node-feature operator (the stored ``(N, F)`` matrix)."""
    return streaming_step(twin(fam, "dense"), lam, x)


def functional_step(fam, lam, x, chunk, rows=None):
    """What ``streaming_step`` does, through the functional normalizer with a fixed tiling
    (``rows`` batch rows, default all, by ``chunk`` nodes) and the family's operator."""
    lam = lam.detach().requires_grad_()
    A, H = log_partition_and_entropy(lam, fam.node_operator, fam.log_weights, chunk, rows)
    ((fam.features(x) * lam).sum(-1) - A + H).sum().backward()
    return lam.grad


def streaming_forward(fam, lam, x):
    with torch.no_grad():
        dist = MePoly(lam, fam)
        return dist.log_prob(x) + dist.entropy()


def materialized_terms(lam, feats, logw, x_feats):
    """The paper's formulation with plain autograd on the ``batch x nodes`` grid."""
    e = lam @ feats.T  # (B, N) energies at the nodes
    logits = e + logw
    A = torch.logsumexp(logits, dim=-1)
    p = torch.softmax(logits, dim=-1)
    H = A - (p * e).sum(-1)
    log_prob = (x_feats * lam).sum(-1) - A
    return log_prob, H


def materialized_step(fam, lam, x):
    lam = lam.detach().requires_grad_()
    log_prob, H = materialized_terms(lam, fam.node_features, fam.log_weights, fam.features(x))
    (log_prob + H).sum().backward()
    return lam.grad


def floor_step(fam, lam, x):
    """Floor: one matmul of the same shape (+ the log-weights) and a logsumexp, no grad."""
    with torch.no_grad():
        return torch.logsumexp(torch.addmm(fam.log_weights, lam, fam.node_features.T), dim=-1)


def floor_chunked_step(fam, lam, x, chunk=256):
    """Stricter floor: the same matmul + logsumexp in cache-sized node chunks, no grad."""
    with torch.no_grad():
        feats, logw = fam.node_features, fam.log_weights
        parts = [
            torch.logsumexp(torch.addmm(logw[s : s + chunk], lam, feats[s : s + chunk].T), dim=-1)
            for s in range(0, feats.shape[0], chunk)
        ]
        return torch.logsumexp(torch.stack(parts, -1), dim=-1)


VARIANTS = {
    "streaming": streaming_step,
    "streaming_dense": streaming_dense_step,
    "streaming_fwd": streaming_forward,
    "materialized": materialized_step,
    "floor": floor_step,
    "floor_chunked": floor_chunked_step,
}
VARIANT_LABEL = {
    "streaming": "(a) streaming: MePoly log_prob + entropy, backward",
    "streaming_dense": "(a2) the same with the dense operator",
    "streaming_fwd": "(a') streaming, forward only (no grad)",
    "materialized": "(b) materialized grid, plain autograd",
    "floor": "(c) floor: matmul + logsumexp, no grad",
    "floor_chunked": "(c') floor in 256-node chunks, no grad",
}


# ----------------------------------------------------------------------------------------
# section 1: accuracy per node on the paper's targets
# ----------------------------------------------------------------------------------------
def _exponents(dim: int, order: int) -> np.ndarray:
    """All exponent vectors with total degree <= order (any order of rows), numpy only."""
    rows = [a for a in itertools.product(range(order + 1), repeat=dim) if sum(a) <= order]
    return np.array(rows, dtype=np.int64).reshape(-1, dim)


def _grid_features(dim: int, order: int, points: int):
    """Legendre features ``(points**dim, F)`` and log-weights of a tensor Gauss-Legendre grid
    (numpy's ``leggauss`` and ``legvander``; none of the package's code)."""
    x, w = legendre.leggauss(points)
    table = legendre.legvander(x, order)  # (p, n + 1)
    exps = _exponents(dim, order)
    idx = np.stack(np.meshgrid(*([np.arange(points)] * dim), indexing="ij"), -1).reshape(-1, dim)
    phi = np.ones((idx.shape[0], exps.shape[0]))
    for d in range(dim):
        phi *= table[idx[:, d]][:, exps[:, d]]
    return phi, np.log(w)[idx].sum(-1), exps


def separable_log_partition(lam, exponents, order: int, points: int, max_block: int = 2**22) -> np.ndarray:
    r"""Independent float64 reference: ``log Z`` on a tensor Gauss-Legendre grid with ``points``
    per axis, for each row of ``lam`` ``(K, F)`` (columns ordered as ``exponents`` ``(F, D)``).

    The dimensions are split in two halves, ``x = (y, z)``; since
    :math:`\phi_\alpha(x) = \phi_{\alpha_y}(y)\,\phi_{\alpha_z}(z)`, the energy on the grid is
    the matrix product ``U Lambda V^T`` with ``U``, ``V`` the half-grid features and ``Lambda``
    the parameters rearranged as a matrix -- about ``sqrt(nodes)`` times cheaper than
    materializing the features of every node, which makes 10^7..10^8-node references affordable.
    """
    lam = np.atleast_2d(np.asarray(lam, dtype=np.float64))
    exponents = np.asarray(exponents)
    dim = exponents.shape[1]
    k = max(1, dim // 2)
    U, wu, e1 = _grid_features(k, order, points)
    if dim > k:
        V, wv, e2 = _grid_features(dim - k, order, points)
    else:
        V, wv, e2 = np.ones((1, 1)), np.zeros(1), np.zeros((1, 0), dtype=np.int64)
    row = {tuple(a): i for i, a in enumerate(e1)}
    col = {tuple(a): i for i, a in enumerate(e2)}
    r = np.array([row[tuple(a[:k])] for a in exponents])
    c = np.array([col[tuple(a[k:])] for a in exponents])
    step = max(1, max_block // V.shape[0])
    out = np.empty(lam.shape[0])
    for b in range(lam.shape[0]):
        L = np.zeros((e1.shape[0], e2.shape[0]))
        L[r, c] = lam[b]
        UL = U @ L
        parts = [np_logsumexp(UL[s : s + step] @ V.T + wu[s : s + step, None] + wv[None, :]) for s in range(0, U.shape[0], step)]
        out[b] = np_logsumexp(parts)
    return out

