r"""Polynomial feature maps :math:`\phi(x)` on the cube :math:`[-1, 1]^D` (paper section 3.1).

The sufficient statistic of MePoly is the vector of all products

.. math::

    \phi_\alpha(x) = \prod_{d=1}^{D} b_{\alpha_d}(x_d),
    \qquad \alpha \in \mathcal{A}_n = \{\alpha \in \mathbb{N}^D : |\alpha| \le n\},

with :math:`|\mathcal{A}_n| = \binom{n + D}{D}` (paper eq. 5-6).  The one-dimensional
factors :math:`b_k` are either monomials :math:`x^k` (the paper's exposition and its
ablation) or the standard Legendre polynomials :math:`P_k` with :math:`P_k(1) = 1`
(the paper's implementation, section 3.1 "Legendre Polynomials").

Exponents are listed in *graded* order: by total degree, and within one degree in the
order of :func:`itertools.combinations_with_replacement` (the order scikit-learn's
``PolynomialFeatures`` uses).  For ``dim=2, order=2`` that is
``1, x1, x2, x1^2, x1 x2, x2^2``.  The constant feature (``alpha = 0``) is part of the
set, so ``num_params`` equals :math:`\binom{n+D}{D}` as in the paper; its natural
parameter cancels between the energy and the log-partition and has no effect on the
density (its gradient through ``log_prob`` is exactly zero).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

__all__ = ["BASES", "exponent_set", "num_features", "univariate_table", "features", "features_and_jacobian", "features_jacobian_hessian"]

BASES = ("legendre", "monomial")


def num_features(dim: int, order: int) -> int:
    r"""Number of exponent vectors with total degree :math:`\le n`: :math:`\binom{n+D}{D}`."""
    return math.comb(order + dim, dim)


def exponent_set(dim: int, order: int) -> Tensor:
    """The exponent vectors :math:`\\alpha` with :math:`|\\alpha| \\le n`, in graded order.

    Returns a ``(num_features(dim, order), dim)`` ``torch.long`` tensor.
    """
    if dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    rows = []
    for degree in range(order + 1):
        for combo in itertools.combinations_with_replacement(range(dim), degree):
            row = [0] * dim
            for d in combo:
                row[d] += 1
            rows.append(row)
    return torch.tensor(rows, dtype=torch.long).reshape(-1, dim)


def univariate_table(x: Tensor, order: int, basis: str = "legendre", derivative: bool | int = False):
    r"""Evaluate :math:`b_0(x), \dots, b_n(x)` elementwise.

    Legendre values use Bonnet's recurrence
    :math:`(k+1) P_{k+1}(x) = (2k+1) x P_k(x) - k P_{k-1}(x)`, their derivatives
    :math:`P'_{k+1}(x) = P'_{k-1}(x) + (2k+1) P_k(x)` and, differentiating once more,
    :math:`P''_{k+1}(x) = P''_{k-1}(x) + (2k+1) P'_k(x)`.  Monomials use :math:`x^k`,
    :math:`k x^{k-1}` and :math:`k (k-1) x^{k-2}`.  The recurrences are plain differentiable
    torch operations, so autograd sees through them.

    Returns a tensor of shape ``x.shape + (order + 1,)``; with ``derivative=True`` (or 1) also
    its derivative table, with ``derivative=2`` the derivative and second-derivative tables.
    """
    if basis not in BASES:
        raise ValueError(f"unknown basis {basis!r}; expected one of {BASES}")
    if int(derivative) not in (0, 1, 2):
        raise ValueError(f"derivative must be False/0, True/1 or 2, got {derivative!r}")
    ones = torch.ones_like(x)
    zeros = torch.zeros_like(x)
    values, slopes, curvatures = [ones], [zeros], [zeros]
    if order >= 1:
        values.append(x)
        slopes.append(ones)
        curvatures.append(zeros)
    for k in range(1, order):
        if basis == "legendre":
            values.append(((2 * k + 1) * x * values[k] - k * values[k - 1]) / (k + 1))
            slopes.append(slopes[k - 1] + (2 * k + 1) * values[k])
            if derivative == 2:
                curvatures.append(curvatures[k - 1] + (2 * k + 1) * slopes[k])
        else:
            values.append(values[k] * x)
            slopes.append((k + 1) * values[k])
            if derivative == 2:
                curvatures.append((k + 1) * slopes[k])
    table = torch.stack(values, dim=-1)
    if derivative == 2:
        return table, torch.stack(slopes, dim=-1), torch.stack(curvatures, dim=-1)
    if derivative:
        return table, torch.stack(slopes, dim=-1)
    return table


def _gather(table: Tensor, exponents: Tensor) -> Tensor:
    # table: (..., D, n+1); exponents: (F, D)  ->  (..., D, F) with entry [d, f] = b_{alpha_fd}(x_d)
    index = exponents.t().expand(*table.shape[:-1], exponents.shape[0])
    return torch.gather(table, -1, index)


def features(x: Tensor, exponents: Tensor, order: int, basis: str = "legendre") -> Tensor:
    r""":math:`\phi(x)` for points ``x`` of shape ``(..., D)``; returns ``(..., F)``.

    The univariate tables of all axes come from one recurrence; the product runs one dimension at
    a time, so memory stays ``(..., F)`` rather than ``(..., D, F)``."""
    table = univariate_table(x, order, basis)  # (..., D, n + 1): one recurrence for all axes
    out = None
    for d in range(exponents.shape[1]):
        factor = table[..., d, :].index_select(-1, exponents[:, d])
        out = factor if out is None else out * factor
    return out


def features_and_jacobian(x: Tensor, exponents: Tensor, order: int, basis: str = "legendre"):
    r""":math:`\phi(x)` and :math:`\partial \phi / \partial x`.

    Product rule: :math:`\partial_{x_d} \phi_\alpha = b'_{\alpha_d}(x_d) \prod_{e \ne d} b_{\alpha_e}(x_e)`.
    Returns ``(..., F)`` and ``(..., D, F)``.
    """
    table, slope = univariate_table(x, order, basis, derivative=True)
    values = _gather(table, exponents)  # (..., D, F)
    slopes = _gather(slope, exponents)  # (..., D, F)
    return values.prod(dim=-2), _jacobian(values, slopes)


def _jacobian(values: Tensor, slopes: Tensor) -> Tensor:
    """Product rule from gathered univariate values and slopes ``(..., D, F)``; returns ``(..., D, F)``."""
    eye = torch.eye(values.shape[-2], dtype=torch.bool, device=values.device)
    # factor[..., d, e, f] = slope if e == d else value
    return torch.where(eye[:, :, None], slopes.unsqueeze(-3), values.unsqueeze(-3)).prod(dim=-2)


def features_jacobian_hessian(x: Tensor, exponents: Tensor, order: int, basis: str = "legendre"):
    r""":math:`\phi(x)`, :math:`\partial \phi / \partial x` and :math:`\partial^2 \phi / \partial x^2`.

    Product rule: :math:`\partial_{x_d} \partial_{x_e} \phi_\alpha = b'_{\alpha_d}(x_d)\, b'_{\alpha_e}(x_e)
    \prod_{g \ne d, e} b_{\alpha_g}(x_g)` for :math:`d \ne e` and
    :math:`b''_{\alpha_d}(x_d) \prod_{g \ne d} b_{\alpha_g}(x_g)` on the diagonal (the mode's
    Newton steps use it instead of differentiating the Jacobian by autograd).
    Returns ``(..., F)``, ``(..., D, F)`` and ``(..., D, D, F)``; memory ``(..., D^3, F)``.
    """
    table, slope, curvature = univariate_table(x, order, basis, derivative=2)
    values = _gather(table, exponents)  # (..., D, F)
    slopes = _gather(slope, exponents)
    curvatures = _gather(curvature, exponents)
    dim = x.shape[-1]
    eye = torch.eye(dim, dtype=torch.bool, device=x.device)
    # factor[..., d, e, g, f]: the univariate factor of axis g in d^2 phi_f / dx_d dx_e
    on_d = eye[:, None, :, None]  # g == d
    on_e = eye[None, :, :, None]  # g == e
    twice = on_d & on_e  # g == d == e: the second derivative
    once = on_d ^ on_e  # d != e and g is one of them: a first derivative
    v, s, c = values[..., None, None, :, :], slopes[..., None, None, :, :], curvatures[..., None, None, :, :]
    factors = torch.where(twice, c, torch.where(once, s, v))
    return values.prod(dim=-2), _jacobian(values, slopes), factors.prod(dim=-2)
