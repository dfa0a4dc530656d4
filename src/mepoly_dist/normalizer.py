r"""The hot path: streaming log-partition, entropy and moments with custom autograd.

For natural parameters :math:`\lambda \in \mathbb{R}^F`, node features
:math:`\phi_i = \phi(x_i)` and log-weights :math:`\log w_i` of a quadrature rule, the
quadrature measure puts mass :math:`p_i \propto w_i \exp(e_i)` on node :math:`i`, with
energy :math:`e_i = \lambda^\top \phi_i`.  Everything MePoly needs is an expectation
under :math:`p` (paper eq. 9 and 18):

.. math::

    A(\lambda) &= \log \textstyle\sum_i w_i e^{e_i}                      && \text{log-partition}\\
    \mu(\lambda) &= \nabla A = \mathbb{E}_p[\phi]                          && \text{moments}\\
    H(\lambda) &= -\mathbb{E}_p[\log p(x)] = A - \mathbb{E}_p[e] = A - \lambda^\top\mu && \text{entropy}

This is exactly one attention head: queries :math:`\lambda`, keys and values the node
features, log-weights as an additive mask; :math:`A` is its log-sum-exp and :math:`\mu`
its output.  Like flash attention we never materialize the ``batch x nodes`` matrix:
nodes are visited in chunks with an online (rescaled) log-sum-exp, so memory grows with
``batch x (features + chunk)``.

Gradients (derived for the custom backward passes; :math:`\bar\cdot` is :math:`\mathbb{E}_p`):

* :math:`\nabla A = \mu`, since :math:`\partial_\lambda \log\sum_i w_i e^{\lambda^\top\phi_i} = \sum_i p_i \phi_i`.
* For any node function :math:`f_i` that does not depend on :math:`\lambda`,
  :math:`\nabla\,\mathbb{E}_p[f] = \mathbb{E}_p[f(\phi-\mu)] = \operatorname{Cov}_p(\phi, f)`
  (differentiate :math:`p_i = w_i e^{e_i - A}`: :math:`\nabla p_i = p_i(\phi_i - \mu)`).
* Entropy, one pass: :math:`\nabla H = \nabla A - \mu - (\partial\mu/\partial\lambda)\lambda
  = -\operatorname{Cov}_p[\phi]\,\lambda = -\mathbb{E}_p[\phi\,(e - \bar e)]`.
  The forward pass accumulates :math:`\sum_i p_i (e_i - m)\phi_i` and
  :math:`\sum_i p_i (e_i - m)` next to :math:`\sum_i p_i \phi_i` (``m`` the running max,
  which keeps the difference well conditioned), so the backward pass of
  ``log_prob + entropy`` costs no further pass over the nodes.
* Second order (TRPO's Hessian-vector products, ``gradgradcheck``): with
  :math:`u = v^\top\phi` and :math:`y = w^\top\phi`,
  :math:`\nabla_\lambda\, w^\top\operatorname{Cov}_p[\phi]v = \mathbb{E}_p[(\phi-\mu)(y-\bar y)(u-\bar u)]`
  (the third central moment) and :math:`\nabla_v\, w^\top\operatorname{Cov}_p[\phi, g]v
  = \mathbb{E}_p[(g-\bar g)(y - \bar y)]`.  Hence :math:`\nabla^2 A = \operatorname{Cov}_p[\phi]`
  and :math:`\nabla(v^\top\nabla H) = -\operatorname{Cov}_p[\phi]v - \mathbb{E}_p[(\phi-\mu)(u-\bar u)(e-\bar e)]`,
  which autograd assembles from :class:`_Covariance` called with ``v = lambda``.

Every formula above, forward and backward, touches the node features only through two
products on a block of nodes: *energies* :math:`c^\top\phi_i` of a coefficient vector
(:math:`\lambda`, :math:`v`, :math:`w`) and *moments* :math:`\sum_i q_i\phi_i` of node weights
(:math:`p_i`, :math:`p_i(e_i - m)`, :math:`p_i(u_i - \bar u)`, :math:`p_i(y_i-\bar y)(u_i-\bar u)`).
The passes below take the features as such an operator (:mod:`mepoly_dist.node_features`):
the stored ``(N, F)`` matrix (:class:`~mepoly_dist.node_features.DenseNodeFeatures`, any rule;
a plain tensor is wrapped in one) or its sum factorization for tensor-product rules
(:class:`~mepoly_dist.node_features.KroneckerNodeFeatures`, about 6x fewer multiply-adds for
D = 2, order 14 on 80 x 80 nodes).  The math, the streaming and the gradients are shared.

The public functions take :math:`\lambda` as ``natural_params``; the private passes and
autograd functions call it ``lam``.

Backward passes run the cheap saved-tensor formulas unless a graph of the gradient is
requested (``create_graph=True``); then they re-run the stream with differentiable
:class:`_Expectation` / :class:`_Covariance` nodes.  Third and higher derivatives are not
implemented (``once_differentiable``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .node_features import NodeFeatures, as_node_features

__all__ = ["DEFAULT_CHUNK_SIZE", "STEP_ELEMENTS", "log_partition_and_entropy", "expectation", "asymptotic_error"]

#: default quadrature nodes per step of the stream (memory ~ rows x (features + chunk)), for the
#: functional API and ``MePolyFamily(chunk_size=...)`` alike: the fastest tiling at batch 4096 here
#: was 256 rows x ~1024 nodes, and with all 4096 rows at once 1024 nodes was as fast as any other
#: chunk (``benchmarks/results/normalizer/normalizer.md``, "Tiling of the stream")
DEFAULT_CHUNK_SIZE = 1024
#: a step of the stream covers about this many (batch row, node) pairs, so that its temporaries stay
#: cache-sized (1 MiB in float32): ``MePolyFamily.tile_for`` tiles a batch so, and under
#: ``torch.func.vmap`` the stream functions fold the vmapped dimension into the batch rows and
#: stream them in tiles of this size (at least the rows of one vmapped slice, as the caller tiled them)
STEP_ELEMENTS = 1 << 18

#: error estimate from the gap ``g = |A - A'|`` between two rules of one kind, the second the coarser
#: (:mod:`mepoly_dist.quadrature`): ``g`` measures the coarser rule's error.  Once both converge
#: geometrically, with rates in the ratio ``r`` (the points ratio for Gauss-Legendre), the finer
#: rule's error is about ``g^r``; :func:`asymptotic_error` reports ``g (g / ASYMPTOTIC_GAP)^(r - 1)``,
#: above ``g^r`` by a factor ``ASYMPTOTIC_GAP^(1 - r)``, and ``g`` itself while ``g >= ASYMPTOTIC_GAP``
#: (before that regime).
ASYMPTOTIC_GAP = 1e-3


def asymptotic_error(gap: Tensor, exponent: float = 2.0) -> Tensor:
    """Error estimate of the finer of two rules from the gap between their log-partitions:
    ``|gap|`` while it is at least :data:`ASYMPTOTIC_GAP`, ``|gap| (|gap| / ASYMPTOTIC_GAP)^(exponent - 1)``
    below (``exponent``: the ratio of the rules' geometric convergence rates, 1 for none)."""
    gap = gap.abs()
    return gap * (gap / ASYMPTOTIC_GAP).clamp(max=1.0) ** (float(exponent) - 1.0)

# The passes run inside the forward/backward of the autograd functions below, without a graph,
# so they overwrite their own temporaries in place (``energies`` returns a fresh tensor).


def _log_partition_only(lam: Tensor, feats: NodeFeatures, logw: Tensor, chunk: int) -> Tensor:
    """``A`` alone: a streamed log-sum-exp of the energies (no moments)."""
    prepared = feats.prepare(lam)
    m = Z = None
    for block in feats.blocks(chunk):
        s = feats.energies(prepared, block).add_(logw[..., block])
        m_new = s.amax(dim=-1) if m is None else torch.maximum(m, s.amax(dim=-1))
        dZ = s.sub_(m_new[:, None]).exp_().sum(-1)
        Z = dZ if Z is None else Z * torch.exp(m - m_new) + dZ
        m = m_new
    return m + torch.log(Z)


def _online_pass(lam: Tensor, feats: NodeFeatures, logw: Tensor, chunk: int, values: NodeFeatures | None = None, entropy=False):
    """One streamed pass with a rescaled running log-sum-exp.

    Returns ``A``, ``E[values]`` (``values`` defaults to the features) and, when
    ``entropy``, ``H`` and ``grad H = -Cov[phi] lam``.
    """
    with_values = values is not None
    prepared = feats.prepare(lam)
    m = Z = S1 = Sv = Sr = Srphi = None
    for block in feats.blocks(chunk):
        e = feats.energies(prepared, block)  # (B, c)
        s = e + logw[..., block]
        m_new = s.amax(dim=-1) if m is None else torch.maximum(m, s.amax(dim=-1))
        if m is not None:
            # rescale the running sums from the old shift m to the new one
            scale = torch.exp(m - m_new)
            if entropy:
                delta = m - m_new
                Sr = scale * (Sr + delta * Z)
                Srphi = scale[:, None] * (Srphi + delta[:, None] * S1)
            Z = scale * Z
            if with_values:
                Sv = scale[:, None] * Sv
            else:
                S1 = scale[:, None] * S1
        w = s.sub_(m_new[:, None]).exp_()  # w_i exp(e_i - m)
        m = m_new
        if entropy:
            wr = e.sub_(m[:, None]).mul_(w)  # w_i exp(e_i - m) (e_i - m)
            dS1, dSrphi = feats.moments(w, block), feats.moments(wr, block)
            dSr = wr.sum(-1)
        else:
            dS1 = feats.moments(w, block) if not with_values else None
        dZ = w.sum(-1)
        dSv = values.moments(w, block) if with_values else None
        if Z is None:
            Z, S1, Sv = dZ, dS1, dSv
            if entropy:
                Sr, Srphi = dSr, dSrphi
        else:
            Z = Z + dZ
            if dS1 is not None:
                S1 = S1 + dS1
            if with_values:
                Sv = Sv + dSv
            if entropy:
                Sr = Sr + dSr
                Srphi = Srphi + dSrphi
    logZ = torch.log(Z)
    A = m + logZ
    if with_values:
        return A, Sv / Z[:, None]
    mu = S1 / Z[:, None]
    if not entropy:
        return A, mu
    rbar = Sr / Z  # E[e] - m
    H = logZ - rbar  # = A - E[e], without the cancellation of two large numbers
    G = -(Srphi / Z[:, None] - mu * rbar[:, None])
    return A, mu, H, G


def _known_pass(lam, feats: NodeFeatures, logw, A, chunk):
    """Yield ``(block, p)`` with the normalized masses p_i (A known)."""
    prepared = feats.prepare(lam)
    for block in feats.blocks(chunk):
        e = feats.energies(prepared, block)
        yield block, e.add_(logw[..., block]).sub_(A[:, None]).exp_()




#: rows are deduplicated only when at most this share of them is distinct
DUPLICATE_SHARE = 0.5


def duplicate_rows(natural_params: Tensor, share: float = DUPLICATE_SHARE) -> tuple[Tensor, Tensor] | None:
    """``(distinct rows, inverse)`` of ``natural_params`` ``(B, F)`` when at most ``share`` of its
    rows are distinct, else None (also used by the sampler, which shares envelopes between equal
    rows).  A fixed projection of the rows groups them cheaply (distinct projections: distinct
    rows); the grouping is kept when every row equals its group's first row, else
    ``torch.unique(dim=0)`` decides.

    The projection is an elementwise product summed along each row, not a matrix-vector product:
    a BLAS kernel may round a row differently by its position in the batch (OpenBLAS on an AMD EPYC
    split equal rows in 197 of 840 batch shapes), while the row sum reduces every row by the same
    sequence of operations, so equal rows get equal keys (0 of the same 840)."""
    B, device = natural_params.shape[0], natural_params.device
    if B < 2:
        return None
    probe = torch.linspace(1.0, 2.0, natural_params.shape[1], dtype=torch.float64, device=device).sqrt()
    keys, inverse = torch.unique((natural_params.double() * probe).sum(dim=1), return_inverse=True)
    if keys.numel() > share * B:
        return None
    # each projection's first row; the grouping is exact when every row equals its group's first
    first = torch.full_like(keys, B, dtype=torch.long).scatter_reduce(0, inverse, torch.arange(B, device=device), reduce="amin")
    distinct = natural_params.index_select(0, first)
    if torch.equal(distinct.index_select(0, inverse), natural_params):
        return distinct, inverse
    distinct, inverse = torch.unique(natural_params, dim=0, return_inverse=True)  # a projection collided, or NaN rows
    return (distinct, inverse) if distinct.shape[0] <= share * B else None


class _StreamFunction(torch.autograd.Function):
    r"""Common ground of the streaming autograd functions: ``forward(lam, feats, logw, ..., chunk)``.

    **torch.func.**  The functions are new-style (``forward`` without ``ctx``, a separate
    ``setup_context``), which is what ``torch.func.grad`` / ``jacrev`` / ``vmap`` need.  Under
    that style ``setup_context`` sees only the inputs and outputs, so the intermediates a
    backward pass reuses (``mu`` and ``grad H``, the log-partition) are extra outputs of
    ``forward``, marked non-differentiable; :meth:`results` (and the ``_Covariance``,
    ``_Expectation`` and ``_LogPartitionEntropy`` callers below) return only the first
    ``num_results`` outputs.

    **vmap.**  The rows of ``lam`` are independent problems, and every tensor argument except
    the log-weights and every output has one row per row of ``lam``.  So the vmap rule folds the
    vmapped dimension into the rows, ``(V, B, ...) -> (V B, ...)``, and runs the function once on
    the folded batch (in tiles, :data:`STEP_ELEMENTS`) instead of tracing the stream's Python
    loop per example; row-aligned arguments that are not vmapped are broadcast over ``V``.  The
    backward passes are written with these functions and elementwise ops, so ``vmap(grad(...))``,
    ``vmap(jacrev(...))`` and ``jacrev`` (a vmap over cotangents) fold the same way.

    torch.func always differentiates with a graph of the gradient, so there the first backward
    pass of ``A`` / ``H`` takes the ``create_graph`` path (two more passes over the nodes; the same
    numbers up to rounding), and ``jacrev(jacrev(...))`` gives Hessians.  Forward mode (``jvp``,
    ``jacfwd``, ``torch.func.hessian``) is not implemented.
    """

    #: leading outputs of ``forward`` that are results; the rest are intermediates for backward
    num_results = 1
    #: positions of the arguments shared by every row (the quadrature log-weights, ...)
    _SHARED = (2,)

    @classmethod
    def results(cls, *args):
        outputs = cls.apply(*args)
        return outputs[0] if cls.num_results == 1 else outputs[: cls.num_results]

    @classmethod
    def vmap(cls, info, in_dims, *args):
        if any(in_dims[i] is not None for i in cls._SHARED):
            raise NotImplementedError(
                "vmap over the quadrature log-weights is not supported; vmap over the natural parameters "
                "(one family per vmapped call)"
            )
        size, feats, chunk = info.batch_size, args[1], args[-1]
        row_aligned = [i for i, arg in enumerate(args) if isinstance(arg, Tensor) and i not in cls._SHARED]
        folded = list(args)
        for i in row_aligned:
            arg, dim = args[i], in_dims[i]
            arg = arg.movedim(dim, 0) if dim is not None else arg.expand(size, *arg.shape)  # (V, B, ...)
            folded[i] = arg.reshape(size * arg.shape[1], *arg.shape[2:])
            if i == 0:
                rows = arg.shape[1]  # of one vmapped slice
        total = size * rows
        tile = max(rows, STEP_ELEMENTS // feats.block_size(chunk), 1)
        parts = []
        for start in range(0, max(total, 1), tile):  # one (empty) call for an empty batch
            piece = list(folded)
            for i in row_aligned:
                piece[i] = folded[i][start : start + tile]
            parts.append(cls.apply(*piece))
        outputs = tuple(_cat(list(part)).reshape(size, rows, *part[0].shape[1:]) for part in zip(*parts))
        return outputs, (0,) * len(outputs)


class _CovarianceStream(_StreamFunction):
    r""":math:`\operatorname{Cov}_p[\phi, g]\,v = \mathbb{E}_p[\phi\,(u - \bar u)]` with :math:`u = g^\top v`.

    ``A`` and ``gbar`` (= E[g]) are constants supplied by the caller; the backward pass
    returns the total derivative (including the dependence of the centering on lambda).
    ``forward`` also returns ``mu`` (= E[phi], accumulated on the way) for the backward pass.
    """

    @staticmethod
    def forward(lam, feats, logw, values, v, A, gbar, chunk):
        ubar = (gbar * v).sum(-1, keepdim=True)
        v_prepared = values.prepare(v)
        out = mu = None
        for block, p in _known_pass(lam, feats, logw, A, chunk):
            u = values.energies(v_prepared, block).sub_(ubar)
            both = feats.moments(torch.cat([p * u, p], dim=0), block)
            d_out, d_mu = both[: lam.shape[0]], both[lam.shape[0] :]
            out = d_out if out is None else out + d_out
            mu = d_mu if mu is None else mu + d_mu
        return out, mu

    @staticmethod
    def setup_context(ctx, inputs, output):
        lam, feats, logw, values, v, A, gbar, chunk = inputs
        _, mu = output
        ctx.mark_non_differentiable(mu)
        ctx.save_for_backward(lam, logw, v, A, gbar, mu)
        ctx.feats, ctx.values, ctx.chunk = feats, values, chunk

    @staticmethod
    @once_differentiable
    def backward(ctx, w, _):
        lam, logw, v, A, gbar, mu = ctx.saved_tensors
        feats, values = ctx.feats, ctx.values
        ubar = (gbar * v).sum(-1, keepdim=True)
        ybar = (w * mu).sum(-1, keepdim=True)
        w_prepared, v_prepared = feats.prepare(w), values.prepare(v)
        S_xphi = S_x = g_v = None
        for block, p in _known_pass(lam, feats, logw, A, ctx.chunk):
            py = p * feats.energies(w_prepared, block).sub_(ybar)  # p (y - ybar)
            x = py * values.energies(v_prepared, block).sub_(ubar)  # p (y - ybar) (u - ubar)
            d_xphi = feats.moments(x, block)
            d_v = values.moments(py, block)
            d_x = x.sum(-1)
            if S_x is None:
                S_xphi, S_x, g_v = d_xphi, d_x, d_v
            else:
                S_xphi, S_x, g_v = S_xphi + d_xphi, S_x + d_x, g_v + d_v
        g_lam = S_xphi - mu * S_x[:, None]
        return g_lam, None, None, None, g_v, None, None, None


class _ExpectationStream(_StreamFunction):
    r""":math:`\mathbb{E}_p[g]` for node values ``g`` (``(N, V)``); gradient :math:`\operatorname{Cov}_p[\phi, g]\,v`.
    ``forward`` also returns ``A`` for the backward pass."""

    @staticmethod
    def forward(lam, feats, logw, values, chunk):
        A, gbar = _online_pass(lam, feats, logw, chunk, values=values)
        return gbar, A

    @staticmethod
    def setup_context(ctx, inputs, output):
        lam, feats, logw, values, chunk = inputs
        gbar, A = output
        ctx.mark_non_differentiable(A)
        ctx.save_for_backward(lam, logw, A, gbar)
        ctx.feats, ctx.values, ctx.chunk = feats, values, chunk

    @staticmethod
    def backward(ctx, v, _):
        lam, logw, A, gbar = ctx.saved_tensors
        g = _Covariance.apply(lam, ctx.feats, logw, ctx.values, v, A, gbar, ctx.chunk)
        return g, None, None, None, None


class _LogPartitionEntropyStream(_StreamFunction):
    """``(A, H)`` in one streamed pass and the error estimate of ``A`` from the embedded rule
    (``embedded_feats``, ``embedded_logw``, ``exponent``; NaN without one); the backward pass
    reuses ``mu`` and ``grad H``, which ``forward`` returns after them."""

    num_results = 3
    _SHARED = (2, 4)

    @staticmethod
    def forward(lam, feats, logw, embedded_feats, embedded_logw, exponent, chunk):
        # rows with identical parameters (a contextual bandit's constant observation) are
        # computed once; every result is per row, so backward is unchanged
        duplicates = None if getattr(feats, "per_row", False) else duplicate_rows(lam)
        rows = lam if duplicates is None else duplicates[0]
        A, mu, H, G = _online_pass(rows, feats, logw, chunk, entropy=True)
        if embedded_feats is None:
            error = torch.full_like(A, torch.nan)
        else:
            error = asymptotic_error(A - _log_partition_only(rows, embedded_feats, embedded_logw, chunk), exponent)
        if duplicates is not None:
            A, H, error, mu, G = (t.index_select(0, duplicates[1]) for t in (A, H, error, mu, G))
        return A, H, error, mu, G

    @staticmethod
    def setup_context(ctx, inputs, output):
        lam, feats, logw, embedded_feats, embedded_logw, exponent, chunk = inputs
        A, _, error, mu, G = output
        ctx.mark_non_differentiable(error, mu, G)
        ctx.save_for_backward(lam, logw, A, mu, G)
        ctx.feats, ctx.chunk = feats, chunk

    @staticmethod
    def backward(ctx, gA, gH, _error, _mu, _G):
        lam, logw, A, mu, G = ctx.saved_tensors
        feats = ctx.feats
        if torch.is_grad_enabled():  # create_graph=True (always under torch.func): a differentiable gradient
            mu = _Expectation.apply(lam, feats, logw, feats, ctx.chunk)
            G = -_Covariance.apply(lam, feats, logw, feats, lam, A, mu.detach(), ctx.chunk)
        return gA[:, None] * mu + gH[:, None] * G, None, None, None, None, None, None


class _Results:
    """``function.apply`` returning only the results, not the intermediates saved for backward."""

    def __init__(self, function: type[_StreamFunction]):
        self.function = function

    def apply(self, *args):
        return self.function.results(*args)


_Covariance = _Results(_CovarianceStream)
_Expectation = _Results(_ExpectationStream)
_LogPartitionEntropy = _Results(_LogPartitionEntropyStream)


def _flatten(lam: Tensor, feats: NodeFeatures, log_weights: Tensor, chunk: int, rows: int | None):
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of nodes, got {chunk!r}")
    if rows is not None and int(rows) < 1:
        raise ValueError(f"rows must be a positive number of batch rows or None, got {rows!r}")
    if lam.shape[-1:] != (feats.num_features,):
        raise ValueError(f"natural parameters of shape {tuple(lam.shape)} do not match {feats.num_features} features")
    flat = lam.reshape(-1, feats.num_features)
    per_row = getattr(feats, "per_row", False)  # one rule per row: log-weights (B, N), no row tiling
    if log_weights.shape != ((flat.shape[0], feats.num_nodes) if per_row else (feats.num_nodes,)):
        raise ValueError(f"log_weights of shape {tuple(log_weights.shape)} do not match {feats.num_nodes} nodes"
                         + (f" for each of {flat.shape[0]} rows" if per_row else ""))
    if per_row:
        rows = None
    blocks = flat.split(flat.shape[0] if rows is None else int(rows)) if flat.shape[0] else (flat,)
    return blocks, lam.shape[:-1], int(chunk)


def _cat(parts):
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def log_partition_and_entropy(natural_params: Tensor, feats, log_weights: Tensor, chunk: int = DEFAULT_CHUNK_SIZE,
                              rows: int | None = None, embedded=None, with_error: bool = False):
    r"""Log-partition :math:`A(\lambda)` and entropy :math:`H(\lambda)` of ``natural_params``
    :math:`\lambda` (each of shape ``natural_params.shape[:-1]``).

    With ``with_error=True`` also the per-row error estimate of ``A`` (no gradient):
    :func:`asymptotic_error` of the gap to the log-partition on the embedded rule ``embedded``,
    a tuple ``(features, log_weights, exponent)`` (``MePolyFamily.embedded_for``; NaN without it).

    ``feats`` are the node features: an ``(N, F)`` tensor or a
    :class:`~mepoly_dist.node_features.NodeFeatures` operator (``family.node_operator``);
    ``log_weights`` ``(N,)``.  The stream visits tiles of ``rows`` batch rows (default: all)
    by ``chunk`` nodes (rounded to whole slabs by a Kronecker operator); the rows are
    independent, so the tiling changes only speed and memory.  Differentiable twice in ``natural_params``.
    """
    feats = as_node_features(feats)
    blocks, batch_shape, chunk = _flatten(natural_params, feats, log_weights, chunk, rows)
    embedded_feats, embedded_logw, exponent = (None, None, 1.0) if embedded is None else embedded
    if embedded_feats is not None:
        embedded_feats = as_node_features(embedded_feats)
        if embedded_feats.num_features != feats.num_features or embedded_logw.shape[-1:] != (embedded_feats.num_nodes,):
            raise ValueError("the embedded rule's features and log-weights do not match the features and its nodes")
    A, H, error = zip(*(_LogPartitionEntropy.apply(block, feats, log_weights, embedded_feats, embedded_logw, float(exponent), chunk)
                        for block in blocks))
    A, H = _cat(A).reshape(batch_shape), _cat(H).reshape(batch_shape)
    return (A, H, _cat(error).reshape(batch_shape)) if with_error else (A, H)


def expectation(
    natural_params: Tensor, feats, log_weights: Tensor, values: Tensor | None = None, chunk: int = DEFAULT_CHUNK_SIZE,
    rows: int | None = None,
):
    """``E_p[g]`` for node values ``values`` ``(N, V)`` or a node operator (the features when None); returns
    ``natural_params.shape[:-1] + (V,)``.  ``feats``, ``chunk`` and ``rows`` as in
    :func:`log_partition_and_entropy`.  Differentiable twice in ``natural_params``."""
    feats = as_node_features(feats)
    blocks, batch_shape, chunk = _flatten(natural_params, feats, log_weights, chunk, rows)
    if values is None:
        values = feats
    elif isinstance(values, NodeFeatures):  # node values as an operator (a per-row rule's)
        pass
    else:
        if not isinstance(values, Tensor) or values.dim() != 2 or values.shape[0] != feats.num_nodes:
            raise ValueError(f"values must be a tensor ({feats.num_nodes}, V) of node values")
        values = as_node_features(values)
    out = _cat([_Expectation.apply(block, feats, log_weights, values, chunk) for block in blocks])
    return out.reshape(*batch_shape, values.num_features)
