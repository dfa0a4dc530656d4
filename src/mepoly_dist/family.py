r"""``MePolyFamily``: what is fixed for a policy head (paper section 3.1-3.2).

A family owns the action dimension :math:`D`, the polynomial order :math:`n`, the basis,
the exponent set :math:`\mathcal{A}_n` (canonical graded order, see :mod:`mepoly_dist.basis`)
and the quadrature rule with its precomputed node features :math:`\phi(x_i)`.  Natural
parameters :math:`\lambda` come from elsewhere (a network head); the family turns them
into :class:`~mepoly_dist.MePoly` distributions.

The node features are *non-persistent* buffers: they follow ``.to(device)`` / ``.double()``
like any buffer, are not written to ``state_dict`` (a checkpoint stores the head, not the
grid), and are always recomputed from float64 master copies, so ``family.float().double()``
loses no precision.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import basis as _basis
from .normalizer import DEFAULT_CHUNK
from .quadrature import QuadratureRule, make_rule

__all__ = ["MePolyFamily"]

#: small batches stream larger chunks, up to this many batch x node elements per step, so a
#: batch of one does not pay a Python step per ``chunk_size`` nodes
CHUNK_ELEMENTS = 1 << 18


class MePolyFamily(nn.Module):
    """Polynomial exponential family on ``[-1, 1]^dim`` of total degree ``<= order``.

    Args:
        dim: action dimension D.
        order: polynomial order n (total degree).
        basis: ``"legendre"`` (default, the paper's implementation) or ``"monomial"``.
        quadrature: a :class:`~mepoly_dist.quadrature.QuadratureRule`, a spec string such as
            ``"gauss_legendre:64"`` (see :func:`~mepoly_dist.quadrature.make_rule`) or None for
            the default rule of this dimension.
        chunk_size: quadrature nodes per step of the streaming normalizer (for large batches;
            see :meth:`chunk_for`).
        dtype: floating dtype of the node features (default: ``torch.get_default_dtype()``).

    Example::

        >>> family = MePolyFamily(dim=2, order=14)
        >>> family.num_params
        120
    """

    def __init__(self, dim: int, order: int, basis: str = "legendre", quadrature=None, chunk_size: int = DEFAULT_CHUNK, dtype=None):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not isinstance(order, int) or order < 0:
            raise ValueError(f"order must be a non-negative integer, got {order!r}")
        if basis not in _basis.BASES:
            raise ValueError(f"unknown basis {basis!r}; expected one of {_basis.BASES}")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.dim = dim
        self.order = order
        self.basis = basis
        self.chunk_size = int(chunk_size)
        self.quadrature: QuadratureRule = make_rule(quadrature, dim)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        exponents = _basis.exponent_set(dim, order)
        # float64 masters on the CPU; the buffers below are views of them in the working dtype/device
        self._master = {
            "nodes": self.quadrature.nodes,
            "log_weights": self.quadrature.log_weights,
            "node_features": _basis.features(self.quadrature.nodes, exponents, order, basis),
        }
        self.register_buffer("exponents", exponents, persistent=False)
        for name, value in self._master.items():
            self.register_buffer(name, value.to(dtype), persistent=False)
        self._sampler_cache = {}

    # -- nn.Module plumbing -------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        # rebuild the float buffers from the float64 masters at the new device/dtype
        for name, master in self._master.items():
            current = getattr(self, name)
            setattr(self, name, master.to(device=current.device, dtype=current.dtype))
        self._sampler_cache = {}
        return self

    # -- public API ---------------------------------------------------------------------
    @property
    def num_params(self) -> int:
        r"""Number of natural parameters :math:`F = \binom{n + D}{D}` (constant term included)."""
        return self.exponents.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.node_features.dtype

    @property
    def device(self) -> torch.device:
        return self.node_features.device

    @property
    def config(self) -> dict:
        """The configuration that rebuilds this family (and decides family equality)."""
        return {"dim": self.dim, "order": self.order, "basis": self.basis, "quadrature": self.quadrature.spec}

    def same_family(self, other: "MePolyFamily") -> bool:
        return self is other or (isinstance(other, MePolyFamily) and self.config == other.config)

    def chunk_for(self, batch_size: int) -> int:
        """Nodes per streaming step for a batch: ``chunk_size``, or more for small batches
        (memory stays below ``max(batch x chunk_size, CHUNK_ELEMENTS)`` elements)."""
        return max(self.chunk_size, CHUNK_ELEMENTS // max(int(batch_size), 1))

    def features(self, x: Tensor) -> Tensor:
        r""":math:`\phi(x)` for ``x`` of shape ``(..., dim)``; returns ``(..., num_params)``."""
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"expected points of shape (..., {self.dim}), got {tuple(x.shape)}")
        return _basis.features(x, self.exponents, self.order, self.basis)

    def features_and_jacobian(self, x: Tensor):
        r""":math:`\phi(x)` ``(..., F)`` and :math:`\partial\phi/\partial x` ``(..., dim, F)``."""
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"expected points of shape (..., {self.dim}), got {tuple(x.shape)}")
        return _basis.features_and_jacobian(x, self.exponents, self.order, self.basis)

    def distribution(self, natural_params: Tensor, validate_args=None):
        """Shorthand for ``MePoly(natural_params, self, validate_args)``."""
        from .distribution import MePoly

        return MePoly(natural_params, self, validate_args=validate_args)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, order={self.order}, basis={self.basis!r}, quadrature={self.quadrature.spec!r}, num_params={self.num_params}"
