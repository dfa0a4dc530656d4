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

__all__ = ["DEFAULT_CHUNK", "log_partition_and_entropy", "expectation"]

#: default nodes per step of the functional API (memory ~ rows x (features + chunk)); 256 was
#: the fastest on one core here for all 4096 rows of a batch at once, order 14, D = 2 (the
#: family tiles large batches into fewer rows and larger chunks: ``MePolyFamily.tile_for``)
DEFAULT_CHUNK = 256

# The passes run inside the forward/backward of the autograd functions below, without a graph,
# so they overwrite their own temporaries in place (``energies`` returns a fresh tensor).


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
        s = e + logw[block]
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
        yield block, e.add_(logw[block]).sub_(A[:, None]).exp_()


class _Covariance(torch.autograd.Function):
    r""":math:`\operatorname{Cov}_p[\phi, g]\,v = \mathbb{E}_p[\phi\,(u - \bar u)]` with :math:`u = g^\top v`.

    ``A`` and ``gbar`` (= E[g]) are constants supplied by the caller; the backward pass
    returns the total derivative (including the dependence of the centering on lambda).
    """

    @staticmethod
    def forward(ctx, lam, feats, logw, values, v, A, gbar, chunk):
        ubar = (gbar * v).sum(-1, keepdim=True)
        v_prepared = values.prepare(v)
        out = mu = None
        for block, p in _known_pass(lam, feats, logw, A, chunk):
            u = values.energies(v_prepared, block).sub_(ubar)
            both = feats.moments(torch.cat([p * u, p], dim=0), block)
            d_out, d_mu = both[: lam.shape[0]], both[lam.shape[0] :]
            out = d_out if out is None else out + d_out
            mu = d_mu if mu is None else mu + d_mu
        ctx.save_for_backward(lam, logw, v, A, gbar, mu)
        ctx.feats, ctx.values, ctx.chunk = feats, values, chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, w):
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


class _Expectation(torch.autograd.Function):
    r""":math:`\mathbb{E}_p[g]` for node values ``g`` (``(N, V)``); gradient :math:`\operatorname{Cov}_p[\phi, g]\,v`."""

    @staticmethod
    def forward(ctx, lam, feats, logw, values, chunk):
        A, gbar = _online_pass(lam, feats, logw, chunk, values=values)
        ctx.save_for_backward(lam, logw, A, gbar)
        ctx.feats, ctx.values, ctx.chunk = feats, values, chunk
        return gbar

    @staticmethod
    def backward(ctx, v):
        lam, logw, A, gbar = ctx.saved_tensors
        g = _Covariance.apply(lam, ctx.feats, logw, ctx.values, v, A, gbar, ctx.chunk)
        return g, None, None, None, None


class _LogPartitionEntropy(torch.autograd.Function):
    """``(A, H)`` in one streamed pass; the backward pass reuses the saved ``mu`` and ``grad H``."""

    @staticmethod
    def forward(ctx, lam, feats, logw, chunk):
        A, mu, H, G = _online_pass(lam, feats, logw, chunk, entropy=True)
        ctx.save_for_backward(lam, logw, A, mu, G)
        ctx.feats, ctx.chunk = feats, chunk
        return A, H

    @staticmethod
    def backward(ctx, gA, gH):
        lam, logw, A, mu, G = ctx.saved_tensors
        feats = ctx.feats
        if torch.is_grad_enabled():  # create_graph=True: build a differentiable gradient
            mu = _Expectation.apply(lam, feats, logw, feats, ctx.chunk)
            G = -_Covariance.apply(lam, feats, logw, feats, lam, A, mu.detach(), ctx.chunk)
        return gA[:, None] * mu + gH[:, None] * G, None, None, None


def _flatten(lam: Tensor, feats: NodeFeatures, log_weights: Tensor, chunk: int, rows: int | None):
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of nodes, got {chunk!r}")
    if rows is not None and int(rows) < 1:
        raise ValueError(f"rows must be a positive number of batch rows or None, got {rows!r}")
    if lam.shape[-1:] != (feats.num_features,):
        raise ValueError(f"natural parameters of shape {tuple(lam.shape)} do not match {feats.num_features} features")
    if log_weights.shape != (feats.num_nodes,):
        raise ValueError(f"log_weights of shape {tuple(log_weights.shape)} do not match {feats.num_nodes} nodes")
    flat = lam.reshape(-1, feats.num_features)
    blocks = flat.split(flat.shape[0] if rows is None else int(rows)) if flat.shape[0] else (flat,)
    return blocks, lam.shape[:-1], int(chunk)


def _cat(parts):
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def log_partition_and_entropy(lam: Tensor, feats, log_weights: Tensor, chunk: int = DEFAULT_CHUNK, rows: int | None = None):
    """Log-partition ``A(lam)`` and entropy ``H(lam)`` (each of shape ``lam.shape[:-1]``).

    ``feats`` are the node features: an ``(N, F)`` tensor or a
    :class:`~mepoly_dist.node_features.NodeFeatures` operator (``family.node_operator``);
    ``log_weights`` ``(N,)``.  The stream visits tiles of ``rows`` batch rows (default: all)
    by ``chunk`` nodes (rounded to whole slabs by a Kronecker operator); the rows are
    independent, so the tiling changes only speed and memory.  Differentiable twice in ``lam``.
    """
    feats = as_node_features(feats)
    blocks, batch_shape, chunk = _flatten(lam, feats, log_weights, chunk, rows)
    A, H = zip(*(_LogPartitionEntropy.apply(block, feats, log_weights, chunk) for block in blocks))
    return _cat(A).reshape(batch_shape), _cat(H).reshape(batch_shape)


def expectation(
    lam: Tensor, feats, log_weights: Tensor, values: Tensor | None = None, chunk: int = DEFAULT_CHUNK, rows: int | None = None
):
    """``E_p[g]`` for node values ``values`` ``(N, V)`` (the features when None); returns
    ``lam.shape[:-1] + (V,)``.  ``feats``, ``chunk`` and ``rows`` as in
    :func:`log_partition_and_entropy`.  Differentiable twice in ``lam``."""
    feats = as_node_features(feats)
    blocks, batch_shape, chunk = _flatten(lam, feats, log_weights, chunk, rows)
    if values is None:
        values = feats
    else:
        if not isinstance(values, Tensor) or values.dim() != 2 or values.shape[0] != feats.num_nodes:
            raise ValueError(f"values must be a tensor ({feats.num_nodes}, V) of node values")
        values = as_node_features(values)
    out = _cat([_Expectation.apply(block, feats, log_weights, values, chunk) for block in blocks])
    return out.reshape(*batch_shape, values.num_features)
