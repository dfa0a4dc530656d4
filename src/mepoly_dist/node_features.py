r"""The node-feature matrix :math:`\Phi` as an operator: the two products of the normalizer.

Every pass of :mod:`mepoly_dist.normalizer` touches the ``(N, F)`` matrix
:math:`\Phi_{i\alpha} = \phi_\alpha(x_i)` of features at the quadrature nodes in exactly two
ways, on one block of nodes at a time:

* **energies**: coefficients :math:`c \in \mathbb{R}^{B \times F}` to values on the nodes,
  :math:`c\,\Phi_{\text{block}}^\top \in \mathbb{R}^{B \times |\text{block}|}`
  (the energies :math:`e = \lambda^\top\phi` and, in the backward passes, :math:`v^\top\phi`,
  :math:`w^\top\phi`);
* **moments**: node weights :math:`q \in \mathbb{R}^{B \times |\text{block}|}` to feature sums,
  :math:`q\,\Phi_{\text{block}} \in \mathbb{R}^{B \times F}` (the moments
  :math:`\sum_i p_i\phi_i` and every weighted sum of the backward passes).

The two are adjoint.  :class:`DenseNodeFeatures` stores :math:`\Phi` and does two matrix
products per block (``N F`` multiply-adds per row each); it works for any rule.
:class:`KroneckerNodeFeatures` never forms :math:`\Phi`: for a tensor-product rule and the
product basis both products factorize into a cascade of small mode products (sum
factorization, as in spectral-element codes).

**Sum factorization.**  A tensor-product rule has nodes :math:`x_i = (t_{i_1}, \dots, t_{i_D})`
for a 1-D rule :math:`t_1..t_n`, with the multi-index :math:`(i_1, \dots, i_D)` in row-major
order (``numpy.meshgrid(..., indexing="ij")``: the last axis fastest), so ``N = n^D``.  With the
1-D table :math:`T_{jk} = b_k(t_j)` (``(n, K)``, ``K = order + 1``) every feature is a product
of table entries, :math:`\phi_\alpha(x_i) = \prod_d T_{i_d \alpha_d}`.  Scatter the
coefficients into a dense ``K x ... x K`` tensor, :math:`\Lambda_\alpha = c_\alpha` for
:math:`\alpha \in \mathcal{A}_n` and 0 for the other :math:`K^D - F` multi-indices; then

.. math::

    (c\,\Phi^\top)_i = \sum_{\alpha \in \mathcal{A}_n} c_\alpha \prod_d T_{i_d\alpha_d}
        = \sum_{k \in [K]^D} \Lambda_k \prod_d T_{i_d k_d}
        = (\Lambda \times_1 T \times_2 T \cdots \times_D T)_{i_1 \dots i_D},

a mode product per axis (:math:`(X \times_d T)_{\dots j \dots} = \sum_k T_{jk} X_{\dots k \dots}`).
For D = 2 that is the matrix identity :math:`E = T \Lambda T^\top`.  Exchanging the sums gives
the adjoint, the moments of node weights :math:`q` (viewed as an ``n x ... x n`` tensor):

.. math::

    (q\,\Phi)_\alpha = \sum_i q_i \prod_d T_{i_d \alpha_d}
        = (q \times_1 T^\top \times_2 T^\top \cdots \times_D T^\top)_\alpha,
    \qquad \alpha \in \mathcal{A}_n,

i.e. :math:`M = T^\top Q\, T` for D = 2, gathered back at the exponent set.  Applying the
modes one at a time costs :math:`\sum_{d=1}^{D} n^d K^{D-d+1}` multiply-adds per row instead of
:math:`n^D F`: for D = 2, order 14 on 80 x 80 nodes, 114,000 instead of 768,000.  A block of
the stream is a range of the leading index :math:`i_1 \in [r_0, r_1)` (``r_1 - r_0`` slabs of
:math:`n^{D-1}` nodes): only the first factor changes, to the rows :math:`T_{r_0:r_1}`, so
memory stays ``batch x block``.

**Layout.**  Coefficients and moments are ``(K^D, B)`` matrices, the multi-index
:math:`(k_1, \dots, k_D)` in row-major order and the batch last, so that scattering and
gathering the exponent set are row copies and every mode product is one 2-D matrix product on a
reshaped view (transposes are BLAS flags, not copies).  Energies contract the leading axis and
append its node axis, ``X.view(K, -1).t() @ T.t()``: from :math:`(k_1, \dots, k_D, b)` through
:math:`(k_2, \dots, k_D, b, i_1)` (with :math:`T_{r_0:r_1}` for the first mode) to
:math:`(b, i_1, \dots, i_D)`, the node order of the rule.  Moments run the same steps backwards,
contracting the trailing node axis and prepending its :math:`k`, ``T.t() @ Q.view(-1, n).t()``
(with :math:`T_{r_0:r_1}` for the last step, :math:`i_1`).

**Gradients.**  The operators are linear and constant in the parameters; the normalizer calls
them inside its custom autograd functions (no graph), and each formula of its backward passes
(:mod:`mepoly_dist.normalizer`) is an energy or a moment product, so the Kronecker operator
serves the first and second derivatives unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NodeFeatures", "DenseNodeFeatures", "KroneckerNodeFeatures", "RowKroneckerNodeFeatures", "as_node_features", "kronecker_flops", "dense_index"]


class NodeFeatures:
    """The ``(N, F)`` node-feature matrix as a pair of adjoint products on blocks of nodes.

    A pass calls :meth:`prepare` once per coefficient matrix, then for each ``block`` of
    :meth:`blocks` (a ``slice`` of node indices) :meth:`energies` and/or :meth:`moments`.
    """

    #: short name (``"dense"`` or ``"kronecker"``)
    kind = "abstract"
    num_nodes: int
    num_features: int

    def block_size(self, chunk: int) -> int:
        """Nodes per block when asked for ``chunk`` (the last block may be shorter)."""
        return min(max(1, int(chunk)), self.num_nodes)

    def blocks(self, chunk: int) -> list[slice]:
        """The node ranges visited by one streamed pass: blocks of :meth:`block_size` nodes."""
        step = self.block_size(chunk)
        return [slice(s, min(s + step, self.num_nodes)) for s in range(0, self.num_nodes, step)]

    def prepare(self, coef: Tensor):
        """Per-pass preprocessing of coefficients ``(B, F)`` for :meth:`energies`."""
        return coef

    def energies(self, prepared, block: slice) -> Tensor:
        r"""``coef @ Phi[block].T``, shape ``(B, len(block))``: a new tensor, which the caller
        may overwrite in place."""
        raise NotImplementedError

    def moments(self, weights: Tensor, block: slice) -> Tensor:
        r"""``weights @ Phi[block]`` for node weights ``(B, len(block))``; shape ``(B, F)``."""
        raise NotImplementedError

    def dense(self) -> Tensor:
        """The ``(N, F)`` matrix itself (for tests and small problems)."""
        raise NotImplementedError


class DenseNodeFeatures(NodeFeatures):
    """The stored matrix ``feats`` ``(N, F)``: two matrix products per block; any rule."""

    kind = "dense"

    def __init__(self, feats: Tensor):
        if feats.dim() != 2:
            raise ValueError(f"node features must be a matrix (N, F), got shape {tuple(feats.shape)}")
        self.feats = feats
        self.num_nodes, self.num_features = feats.shape

    def energies(self, prepared: Tensor, block: slice) -> Tensor:
        return prepared @ self.feats[block].t()

    def moments(self, weights: Tensor, block: slice) -> Tensor:
        return weights @ self.feats[block]

    def dense(self) -> Tensor:
        return self.feats


class _SlabBlocks(NodeFeatures):
    """Blocks of whole slabs of a tensor grid: ``points`` nodes per axis, ``slab = points^(D-1)``
    nodes per value of the leading index (the Kronecker operators' stream steps)."""

    points: int
    slab: int

    def block_size(self, chunk: int) -> int:
        """Whole slabs of ``n^(D-1)`` nodes: ``chunk`` rounded down, at least one slab."""
        return min(max(1, int(chunk) // self.slab), self.points) * self.slab

    def _slabs(self, block: slice) -> tuple[int, int]:
        start, stop = block.start or 0, self.num_nodes if block.stop is None else min(block.stop, self.num_nodes)
        if start % self.slab or stop % self.slab:
            raise ValueError(f"a Kronecker block must cover whole slabs of {self.slab} nodes, got {block}")
        return start // self.slab, stop // self.slab


class KroneckerNodeFeatures(_SlabBlocks):
    r"""Sum-factorized features of a tensor-product rule (see the module docstring).

    Args:
        table: ``(n, K)`` 1-D table :math:`T_{jk} = b_k(t_j)` at the rule's 1-D nodes
            (:func:`mepoly_dist.basis.univariate_table`), in the working dtype and device.
        exponents: ``(F, D)`` exponent set (``torch.long``, same device), all entries ``< K``.

    Node ``i`` is the multi-index ``(i_1, ..., i_D)`` in row-major order, as the tensor rules of
    :mod:`mepoly_dist.quadrature` list their nodes; blocks are whole slabs of ``n^(D-1)`` nodes.
    """

    kind = "kronecker"

    def __init__(self, table: Tensor, exponents: Tensor):
        if table.dim() != 2 or exponents.dim() != 2:
            raise ValueError("expected a 1-D table (n, K) and exponents (F, D)")
        n, K = table.shape
        self.dim = exponents.shape[1]
        if exponents.numel() and int(exponents.max()) >= K:
            raise ValueError(f"exponents up to {int(exponents.max())} need a table with more than {K} columns")
        self.table = table  # (n, K)
        # (K, n), row-major: its column slices are BLAS-ready operands (a slice of ``table``,
        # transposed, sent torch's CPU matmul down a path 20x slower for small K)
        self.table_t = table.t().contiguous()
        self.points, self.width = n, K
        self.num_nodes = n**self.dim
        self.num_features = exponents.shape[0]
        self.slab = n ** (self.dim - 1)
        self.exponents = exponents
        # row of alpha in the (K^D, B) layout: (k_1, ..., k_D) in row-major order; and for each
        # row, the feature it holds (F: a zero row appended to the coefficients)
        index = dense_index(exponents, K)
        self._index = index
        self._source = torch.full((K**self.dim,), self.num_features, dtype=index.dtype, device=index.device)
        self._source[index] = torch.arange(self.num_features, device=index.device)

    def prepare(self, coef: Tensor) -> Tensor:
        """Scatter ``(B, F)`` coefficients into the zero-padded ``(K^D, B)`` layout."""
        padded = torch.cat([coef.t(), coef.new_zeros(1, coef.shape[0])])  # (F + 1, B)
        return padded.index_select(0, self._source)

    def energies(self, prepared: Tensor, block: slice) -> Tensor:
        r0, r1 = self._slabs(block)
        x = self._lead(prepared).t() @ self.table_t[:, r0:r1]  # mode 1: (k_2..k_D, b, i_1)
        for _ in range(1, self.dim):  # modes 2..D: contract the leading k, append its node axis
            x = self._lead(x).t() @ self.table_t
        return x.view(prepared.shape[1], (r1 - r0) * self.slab)  # (b, i_1, ..., i_D)

    def moments(self, weights: Tensor, block: slice) -> Tensor:
        r0, r1 = self._slabs(block)
        q = weights
        for _ in range(1, self.dim):  # modes D..2: contract the trailing i, prepend its k
            q = self.table_t @ q.reshape(-1, self.points).t()
        m = self.table_t[:, r0:r1] @ q.reshape(-1, r1 - r0).t()  # mode 1: (k_1, ..., k_D, b)
        return m.view(self.width**self.dim, weights.shape[0]).index_select(0, self._index).t()

    def _lead(self, x: Tensor) -> Tensor:
        """``x`` as ``(K, rest)``: its leading multi-index axis split off (explicit sizes, so
        that an empty batch works too)."""
        return x.view(self.width, x.numel() // self.width)

    def dense(self) -> Tensor:
        """``Phi`` from the table: ``prod_d T[i_d, alpha_d]`` over the row-major node grid."""
        out = None
        for d in range(self.dim):
            shape = [1] * self.dim + [self.num_features]
            shape[d] = self.points
            factor = self.table[:, self.exponents[:, d]].reshape(shape)
            out = factor if out is None else out * factor
        return out.reshape(self.num_nodes, self.num_features)


def tensor_grid_energies(prepared: Tensor, tables_t: list[Tensor]) -> Tensor:
    r"""Values of the polynomials ``prepared`` (coefficients in the ``(K^D, B)`` layout of
    :meth:`KroneckerNodeFeatures.prepare`) on a tensor grid with its own 1-D table per axis,
    :math:`(\Lambda \times_1 T_1 \times_2 T_2 \cdots \times_D T_D)`, given as transposed tables
    ``tables_t[d]`` ``(K, n_d)``; returns ``(B, n_1 ... n_D)`` in row-major grid order.  With a
    derivative table :math:`T'_{jk} = b'_k(t_j)` on axis ``d`` this is :math:`\partial_{x_d}` of
    the polynomials on the grid (the sampler's cell gradients)."""
    x = prepared
    K = tables_t[0].shape[0]
    for table_t in tables_t:  # contract the leading k, append this axis's grid index last
        x = x.view(K, x.numel() // K).t() @ table_t
    return x.reshape(prepared.shape[1], -1)


def as_node_features(feats) -> NodeFeatures:
    """``feats`` as an operator: a :class:`NodeFeatures` as is, a ``(N, F)`` tensor as dense."""
    if isinstance(feats, NodeFeatures):
        return feats
    if isinstance(feats, Tensor):
        return DenseNodeFeatures(feats)
    raise TypeError(f"node features must be a tensor (N, F) or a NodeFeatures operator, got {type(feats).__name__}")


def kronecker_flops(points: int, width: int, dim: int) -> int:
    r"""Multiply-adds per coefficient row of one sum-factorized product over all nodes,
    :math:`\sum_{d=1}^{D} n^d K^{D-d+1}` (the dense product costs :math:`n^D F`)."""
    return sum(points**d * width ** (dim - d + 1) for d in range(1, dim + 1))


def dense_index(exponents: Tensor, width: int) -> Tensor:
    """Position of each exponent vector in the row-major ``width^D`` multi-index layout."""
    index = torch.zeros_like(exponents[:, 0])
    for d in range(exponents.shape[1]):
        index = index * width + exponents[:, d]
    return index


class RowKroneckerNodeFeatures(_SlabBlocks):
    r"""Sum-factorized features of a *per-row* tensor-product rule (the box rules of
    :mod:`mepoly_dist.zoom`).

    Row ``b`` has its own 1-D nodes :math:`t^{(b)}_{d,j}` on every axis, so its own 1-D tables
    :math:`T^{(b)}_{d,jk} = b_k(t^{(b)}_{d,j})`; its node ``i = (i_1, ..., i_D)`` (row-major, the
    same layout as :class:`KroneckerNodeFeatures`) has features :math:`\prod_d T^{(b)}_{d, i_d \alpha_d}`.
    The energies and moments are the same mode products as in :class:`KroneckerNodeFeatures`, with
    a batched matrix product per mode (batch first) instead of one shared product:

    .. math::

        E^{(b)} = \Lambda^{(b)} \times_1 T^{(b)}_1 \cdots \times_D T^{(b)}_D,
        \qquad M^{(b)} = Q^{(b)} \times_1 T^{(b)\top}_1 \cdots \times_D T^{(b)\top}_D,

    i.e. :math:`E = T_1 \Lambda T_2^\top` and :math:`M = T_1^\top Q\, T_2` per row for D = 2, at
    :math:`\sum_d n^d K^{D-d+1}` multiply-adds per row and pass.  Blocks are whole slabs of the
    leading node axis, as for the shared operator.

    Args:
        tables: ``(B, D, n, K)`` per-row 1-D tables (working dtype and device).
        exponents: ``(F, D)`` exponent set, entries ``< K``.
    """

    kind = "row_kronecker"
    #: the operator's rows are tied to the batch rows (the normalizer slices it with the batch)
    per_row = True

    def __init__(self, tables: Tensor, exponents: Tensor):
        if tables.dim() != 4 or exponents.dim() != 2 or tables.shape[1] != exponents.shape[1]:
            raise ValueError(f"expected tables (B, D, n, K) and exponents (F, D), got {tuple(tables.shape)} and {tuple(exponents.shape)}")
        self.rows, self.dim, self.points, self.width = tables.shape
        if exponents.numel() and int(exponents.max()) >= self.width:
            raise ValueError(f"exponents up to {int(exponents.max())} need tables with more than {self.width} columns")
        self.tables = tables
        self.exponents = exponents
        self.num_nodes = self.points**self.dim
        self.num_features = exponents.shape[0]
        self.slab = self.points ** (self.dim - 1)
        self._index = dense_index(exponents, self.width)

    def with_exponents(self, exponents: Tensor) -> "RowKroneckerNodeFeatures":
        """The same rows and nodes with other features (``exponents`` entries ``< K``)."""
        return RowKroneckerNodeFeatures(self.tables, exponents)

    def prepare(self, coef: Tensor) -> Tensor:
        """Scatter ``(B, F)`` coefficients into the zero-padded ``(B, K^D)`` layout."""
        dense = coef.new_zeros(coef.shape[0], self.width**self.dim)
        return dense.index_copy_(1, self._index, coef)

    def _stacked(self, method, batch: Tensor, block: slice) -> Tensor:
        """``method`` on a batch of ``k * rows`` rows, ``k`` stacked copies of the operator's rows
        (the normalizer stacks two weight sets into one product)."""
        return torch.cat([method(part, block) for part in batch.split(self.rows)])

    def energies(self, prepared: Tensor, block: slice) -> Tensor:
        if prepared.shape[0] != self.rows:
            return self._stacked(self.energies, prepared, block)
        r0, r1 = self._slabs(block)
        B, K = prepared.shape[0], self.width
        x = self.tables[:, 0, r0:r1] @ prepared.view(B, K, -1)  # (B, i_1, k_2..k_D)
        for d in range(1, self.dim):  # contract the next k, append its node axis last
            x = self.tables[:, d] @ x.transpose(1, 2).reshape(B, K, -1)  # (B, i_d, rest)
        return x.transpose(1, 2).reshape(B, -1) if self.dim > 1 else x.reshape(B, -1)

    def moments(self, weights: Tensor, block: slice) -> Tensor:
        if weights.shape[0] != self.rows:
            return self._stacked(self.moments, weights, block)
        r0, r1 = self._slabs(block)
        B, n = weights.shape[0], self.points
        if self.dim == 1:
            m = self.tables[:, 0, r0:r1].transpose(1, 2) @ weights.view(B, -1, 1)
            return m.view(B, self.width).index_select(1, self._index)
        q = weights.view(B, -1, n).transpose(1, 2)  # (B, i_D, rest)
        for d in range(self.dim - 1, 0, -1):  # modes D..2: contract the trailing i, prepend its k
            q = (self.tables[:, d].transpose(1, 2) @ q).reshape(B, -1, n if d > 1 else r1 - r0).transpose(1, 2)
        m = self.tables[:, 0, r0:r1].transpose(1, 2) @ q  # (B, k_1, k_2..k_D)
        return m.reshape(B, -1).index_select(1, self._index)

    def dense(self) -> Tensor:
        raise NotImplementedError("a per-row operator has no single (N, F) matrix; use features at its nodes")
