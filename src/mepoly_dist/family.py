r"""``MePolyFamily``: what is fixed for a policy head (paper section 3.1-3.2).

A family owns the action dimension :math:`D`, the polynomial order :math:`n`, the basis,
the exponent set :math:`\mathcal{A}_n` (canonical graded order, see :mod:`mepoly_dist.basis`)
and the quadrature rule with its precomputed node features :math:`\phi(x_i)`.  Natural
parameters :math:`\lambda` come from elsewhere (a network head); the family turns them
into :class:`~mepoly_dist.MePoly` distributions.

The normalizer sees the node features through an operator, ``family.node_operator``
(:mod:`mepoly_dist.node_features`): for tensor-product rules in D = 2..4 the sum-factorized
:class:`~mepoly_dist.node_features.KroneckerNodeFeatures` (built from the 1-D table
:math:`b_k(t_j)` at the rule's 1-D nodes) where it needs at most half the multiply-adds of
the dense product -- the default rules of D = 2, 3, 4 -- and otherwise the stored matrix
(:class:`~mepoly_dist.node_features.DenseNodeFeatures`).  Both give the same numbers up to
rounding; ``node_operator="dense"`` forces the stored matrix (for tests and comparisons).

The node features and the 1-D table are *non-persistent* buffers: they follow
``.to(device)`` / ``.double()`` like any buffer, are not written to ``state_dict`` (a
checkpoint stores the head, not the grid), and are always recomputed from float64 master
copies, so ``family.float().double()`` loses no precision; the operator is rebuilt on them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import basis as _basis
from .node_features import DenseNodeFeatures, KroneckerNodeFeatures, NodeFeatures, kronecker_flops
from .quadrature import QuadratureRule, make_rule

__all__ = ["MePolyFamily", "NODE_OPERATORS"]

#: values of ``MePolyFamily(node_operator=...)``
NODE_OPERATORS = ("auto", "dense", "kronecker")

#: ``"auto"`` takes the Kronecker operator for tensor-product rules of dimension 2 to
#: ``KRONECKER_MAX_DIM`` when it needs at most ``KRONECKER_FLOP_RATIO`` of the dense
#: multiply-adds.  Measured here (one core, float32, batch 256, log_prob + entropy + backward):
#: 1.8-2.7x faster for D = 2, order 10-20 and D = 3, order 8-14; even (within 10%) for small
#: families (F < 50) and the D = 4, order 4 default; slower for D = 5, where the cascade of five
#: products of 5-7 wide matrices costs more than it saves.
KRONECKER_FLOP_RATIO = 0.5
KRONECKER_MAX_DIM = 4

#: a step of the stream covers about this many (batch row, node) pairs: small batches stream
#: more nodes per step (a batch of one does not pay a Python step per ``chunk_size`` nodes), large
#: batches fewer rows, so that the temporaries of a step stay cache-sized (1 MiB in float32)
CHUNK_ELEMENTS = 1 << 18

#: default ``chunk_size``: the fastest tiling at batch 4096 here was 256 rows x ~1024 nodes,
#: for the dense and the Kronecker operator alike (``benchmarks/results/normalizer.md``)
DEFAULT_CHUNK_SIZE = 1024


class MePolyFamily(nn.Module):
    """Polynomial exponential family on ``[-1, 1]^dim`` of total degree ``<= order``.

    Args:
        dim: action dimension D.
        order: polynomial order n (total degree).
        basis: ``"legendre"`` (default, the paper's implementation) or ``"monomial"``.
        quadrature: a :class:`~mepoly_dist.quadrature.QuadratureRule`, a spec string such as
            ``"gauss_legendre:64"`` (see :func:`~mepoly_dist.quadrature.make_rule`) or None for
            the default rule of this dimension.
        chunk_size: quadrature nodes per step of the streaming normalizer for large batches
            (see :meth:`tile_for`).
        dtype: floating dtype of the node features (default: ``torch.get_default_dtype()``).
        node_operator: how the normalizer multiplies by the node features: ``"auto"``
            (default: sum-factorized for tensor-product rules in D = 2..4 where that saves at
            least half the multiply-adds), ``"dense"`` (the stored ``(N, F)`` matrix) or
            ``"kronecker"`` (sum-factorized; needs a tensor-product rule).  Not part of
            :attr:`config`: it does not change the numbers.

    Example::

        >>> family = MePolyFamily(dim=2, order=14)
        >>> family.num_params
        120
    """

    def __init__(
        self,
        dim: int,
        order: int,
        basis: str = "legendre",
        quadrature=None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        dtype=None,
        node_operator: str = "auto",
    ):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not isinstance(order, int) or order < 0:
            raise ValueError(f"order must be a non-negative integer, got {order!r}")
        if basis not in _basis.BASES:
            raise ValueError(f"unknown basis {basis!r}; expected one of {_basis.BASES}")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if node_operator not in NODE_OPERATORS:
            raise ValueError(f"unknown node_operator {node_operator!r}; expected one of {NODE_OPERATORS}")
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
        if self._use_kronecker(node_operator):
            self._master["axis_table"] = _basis.univariate_table(self.quadrature.axis_nodes, order, basis)
        self.register_buffer("exponents", exponents, persistent=False)
        for name, value in self._master.items():
            self.register_buffer(name, value.to(dtype), persistent=False)
        self.node_operator: NodeFeatures = self._build_operator()
        self._sampler_cache = {}

    def _use_kronecker(self, node_operator: str) -> bool:
        axis = self.quadrature.axis_nodes
        if node_operator == "kronecker" and axis is None:
            raise ValueError(f"node_operator='kronecker' needs a tensor-product rule, not {self.quadrature.spec!r}")
        if node_operator != "auto" or axis is None or not 2 <= self.dim <= KRONECKER_MAX_DIM:
            return node_operator == "kronecker"
        dense = self.quadrature.num_nodes * _basis.num_features(self.dim, self.order)
        return kronecker_flops(len(axis), self.order + 1, self.dim) <= KRONECKER_FLOP_RATIO * dense

    def _build_operator(self) -> NodeFeatures:
        if "axis_table" in self._master:
            return KroneckerNodeFeatures(self.axis_table, self.exponents)
        return DenseNodeFeatures(self.node_features)

    # -- nn.Module plumbing -------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        # rebuild the float buffers from the float64 masters at the new device/dtype
        for name, master in self._master.items():
            current = getattr(self, name)
            setattr(self, name, master.to(device=current.device, dtype=current.dtype))
        self.node_operator = self._build_operator()
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

    def tile_for(self, batch_size: int) -> tuple[int, int]:
        """``(rows, chunk)``: batch rows and nodes per streaming step for a batch.

        ``chunk`` is ``chunk_size``, or more for small batches (up to ``CHUNK_ELEMENTS // batch``);
        ``rows`` is all rows while ``rows x block`` stays within ``CHUNK_ELEMENTS``, fewer for
        large batches (``block`` is ``chunk`` as the operator rounds it, whole slabs for
        Kronecker), so the temporaries of a step stay about ``CHUNK_ELEMENTS`` elements."""
        batch_size = max(int(batch_size), 1)
        chunk = max(self.chunk_size, CHUNK_ELEMENTS // batch_size)
        rows = max(1, CHUNK_ELEMENTS // self.node_operator.block_size(chunk))
        steps = -(-batch_size // rows)
        return -(-batch_size // steps), chunk  # the same number of rows in every step

    def _check_points(self, x: Tensor) -> None:
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"expected points of shape (..., {self.dim}), got {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        r""":math:`\phi(x)` for ``x`` of shape ``(..., dim)``; returns ``(..., num_params)``."""
        self._check_points(x)
        return _basis.features(x, self.exponents, self.order, self.basis)

    def features_and_jacobian(self, x: Tensor):
        r""":math:`\phi(x)` ``(..., F)`` and :math:`\partial\phi/\partial x` ``(..., dim, F)``."""
        self._check_points(x)
        return _basis.features_and_jacobian(x, self.exponents, self.order, self.basis)

    def features_jacobian_hessian(self, x: Tensor):
        r""":math:`\phi(x)`, :math:`\partial\phi/\partial x` ``(..., dim, F)`` and
        :math:`\partial^2\phi/\partial x^2` ``(..., dim, dim, F)``."""
        self._check_points(x)
        return _basis.features_jacobian_hessian(x, self.exponents, self.order, self.basis)

    def distribution(self, natural_params: Tensor, validate_args=None):
        """Shorthand for ``MePoly(natural_params, self, validate_args)``."""
        from .distribution import MePoly

        return MePoly(natural_params, self, validate_args=validate_args)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, order={self.order}, basis={self.basis!r}, quadrature={self.quadrature.spec!r}, "
            f"num_params={self.num_params}, node_operator={self.node_operator.kind!r}"
        )
