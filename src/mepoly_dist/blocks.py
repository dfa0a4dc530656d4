r"""Products of low-dimensional MePoly blocks: the cheap fallback for high action dimensions.

A full MePoly density on :math:`[-1, 1]^D` has :math:`\binom{n + D}{D}` parameters, a quadrature
rule whose node count grows with :math:`D` (paper section 3) and, for the exact sampler
(:mod:`mepoly_dist.sampling`), an envelope whose cell count grows like :math:`G^D`.  At
:math:`D = 8` (7-DoF joint control plus a gripper) that is too slow for PPO rollouts.  A block
product splits the coordinates into consecutive groups :math:`x = (x_{(1)}, \dots, x_{(B)})` of
sizes :math:`D_1 + \dots + D_B = D` and models

.. math::

    p_\lambda(x) = \prod_{b=1}^{B} p_{\lambda_b}(x_{(b)}),
    \qquad p_{\lambda_b}(y) = \exp\big(\lambda_b^\top \phi_b(y) - A_b(\lambda_b)\big),

each factor a MePoly on :math:`[-1, 1]^{D_b}` (eq. 7-9) with its own order and quadrature.  This
is itself an exponential family (features :math:`\phi_b(x_{(b)})`, log-partition
:math:`\sum_b A_b`), so everything stays exact on the blocks' quadrature measures:

.. math::

    \log p = \sum_b \log p_b, \qquad H(p) = \sum_b H(p_b), \qquad
    \mathrm{KL}(p\,\|\,q) = \sum_b \mathrm{KL}(p_b\,\|\,q_b),

and a sample is the concatenation of independent block samples.  Blocks of one configuration
(size, order, basis, quadrature) share one :class:`~mepoly_dist.MePolyFamily` and are evaluated as
one batched MePoly (their parameters stacked on a leading batch axis), so a ``[2, 2]`` head costs
one sampler call and one streamed normalizer pass rather than two.  What is lost is dependence
*between* blocks: the product can be multi-modal within a block (a planar ``(dx, dy)`` block
keeps the paper's non-convex 2-D shapes) but not across blocks.  Cost is the sum of the blocks'
costs, linear in :math:`D` at a fixed block size.

Example::

    >>> family = BlockMePolyFamily([2, 2], order=6)
    >>> family.dim, family.num_params
    (4, 56)
    >>> dist = BlockMePoly(torch.zeros(family.num_params), family)
    >>> dist.entropy()  # uniform on the 4-cube: 4 log 2
    tensor(2.7726)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.distributions.kl import kl_divergence, register_kl

from .distribution import MePoly, _OnTheCube
from .family import MePolyFamily

__all__ = ["BlockMePolyFamily", "BlockMePoly", "parse_blocks"]


def parse_blocks(blocks, dim: int) -> list[int]:
    """Block sizes from ``blocks``: a sequence of sizes summing to ``dim``, or one int (equal
    blocks of that size, the last one smaller if ``dim`` is not a multiple)."""
    if isinstance(blocks, int):
        if blocks < 1:
            raise ValueError(f"block size must be positive, got {blocks}")
        sizes = [blocks] * (dim // blocks) + ([dim % blocks] if dim % blocks else [])
    else:
        sizes = [int(b) for b in blocks]
    if not sizes or any(b < 1 for b in sizes) or sum(sizes) != dim:
        raise ValueError(f"block sizes {list(blocks) if not isinstance(blocks, int) else blocks} must be positive and sum to the action dimension {dim}")
    return sizes


class BlockMePolyFamily(nn.Module):
    r"""The families of a block product (an ``nn.Module``: ``.to(device)`` moves every block's buffers).

    Args:
        sizes: block dimensions :math:`D_1, \dots, D_B` (consecutive coordinates).
        order: one order for every block, or one per block.
        basis, quadrature, dtype: as :class:`~mepoly_dist.MePolyFamily` (``quadrature``
            may be one spec for all blocks, one per block, or ``None`` for each block's default).
    """

    def __init__(self, sizes: Sequence[int], order: int | Sequence[int] = 8, basis: str = "legendre", quadrature=None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError(f"block sizes must be positive integers, got {sizes}")
        orders = [int(order)] * len(sizes) if isinstance(order, int) else [int(o) for o in order]
        quads = list(quadrature) if isinstance(quadrature, (list, tuple)) else [quadrature] * len(sizes)
        if len(orders) != len(sizes) or len(quads) != len(sizes):
            raise ValueError(f"got {len(orders)} orders and {len(quads)} quadrature rules for {len(sizes)} blocks")
        families = []
        for s, o, q in zip(sizes, orders, quads):
            family = MePolyFamily(s, o, basis=basis, quadrature=q, dtype=dtype)
            # blocks of one configuration share one family (its nodes, features and sampler cache)
            families.append(next((f for f in families if f.same_family(family)), family))
        self.blocks = nn.ModuleList(families)
        self.sizes = sizes
        #: ``(family, block indices)`` for each distinct block family, in order of first appearance
        self.groups = tuple(
            (family, tuple(i for i, f in enumerate(families) if f is family))
            for family in dict.fromkeys(families)
        )

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    @property
    def num_params(self) -> int:
        return sum(f.num_params for f in self.blocks)

    @property
    def param_sizes(self) -> list[int]:
        return [f.num_params for f in self.blocks]

    @property
    def dtype(self) -> torch.dtype:
        return self.blocks[0].dtype

    @property
    def device(self) -> torch.device:
        return self.blocks[0].device

    @property
    def config(self) -> dict:
        return {"sizes": list(self.sizes), "blocks": [f.config for f in self.blocks]}

    def same_family(self, other: "BlockMePolyFamily") -> bool:
        return (isinstance(other, BlockMePolyFamily) and self.sizes == other.sizes
                and all(a.same_family(b) for a, b in zip(self.blocks, other.blocks)))

    def split_params(self, natural_params: Tensor) -> tuple[Tensor, ...]:
        """:math:`\\lambda \\to (\\lambda_1, \\dots, \\lambda_B)` along the last axis."""
        return natural_params.split(self.param_sizes, dim=-1)

    def split_value(self, value: Tensor) -> tuple[Tensor, ...]:
        """:math:`x \\to (x_{(1)}, \\dots, x_{(B)})` along the last axis."""
        return value.split(self.sizes, dim=-1)

    def first_param_indices(self) -> list[int]:
        """Index of each block's constant feature in the flat parameter vector."""
        starts, total = [], 0
        for size in self.param_sizes:
            starts.append(total)
            total += size
        return starts

    def distribution(self, natural_params: Tensor, validate_args=None) -> "BlockMePoly":
        return BlockMePoly(natural_params, self, validate_args=validate_args)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"


class BlockMePoly(_OnTheCube, Distribution):
    r"""Product of independent MePoly densities over consecutive coordinate blocks (see module docstring).

    Args:
        natural_params: the blocks' :math:`\lambda_b` concatenated, shape ``batch_shape + (family.num_params,)``.
        family: a :class:`BlockMePolyFamily`.
        validate_args: as in ``torch.distributions``.
    """

    def __init__(self, natural_params: Tensor, family: BlockMePolyFamily, validate_args=None):
        if not isinstance(family, BlockMePolyFamily):
            raise TypeError(f"family must be a BlockMePolyFamily, got {type(family).__name__}")
        if not isinstance(natural_params, Tensor) or natural_params.dim() < 1 or natural_params.shape[-1] != family.num_params:
            shape = tuple(natural_params.shape) if isinstance(natural_params, Tensor) else type(natural_params).__name__
            raise ValueError(f"natural_params must have last dimension {family.num_params} (blocks {family.sizes} with "
                             f"{family.param_sizes} parameters), got {shape}")
        self.natural_params = natural_params
        self.family = family
        super().__init__(natural_params.shape[:-1], torch.Size((family.dim,)), validate_args=validate_args)
        # one MePoly per group of identical blocks, batch_shape (blocks in the group,) + batch_shape;
        # they validate nothing themselves: this object checks parameters and values once
        params = family.split_params(natural_params)
        self.parts = [MePoly(torch.stack([params[i] for i in indices]), fam, validate_args=False) for fam, indices in family.groups]

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BlockMePoly, _instance)
        batch_shape = torch.Size(batch_shape)
        params = self.natural_params.expand(batch_shape + (self.family.num_params,))
        BlockMePoly.__init__(new, params, self.family, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def _block_axis(self) -> int:
        """Position of the group's block axis in a part's ``sample_shape + (k,) + batch_shape + event`` tensors."""
        return -(len(self.batch_shape) + 2)

    def _concat_blocks(self, per_part) -> Tensor:
        """Reassemble per-group tensors ``(..., k, *batch, D_b)`` into ``(..., *batch, D)`` in block order."""
        pieces = [None] * len(self.family.sizes)
        for (_, indices), tensor in zip(self.family.groups, per_part):
            for i, piece in zip(indices, tensor.unbind(self._block_axis)):
                pieces[i] = piece
        return torch.cat(pieces, dim=-1)

    @property
    def log_partition(self) -> Tensor:
        return sum(part.log_partition.sum(0) for part in self.parts)

    def entropy(self) -> Tensor:
        return sum(part.entropy().sum(0) for part in self.parts)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = value.expand(torch.broadcast_shapes(value.shape, self.batch_shape + self.event_shape))
        values = self.family.split_value(value)
        axis = self._block_axis
        return sum(
            part.log_prob(torch.stack([values[i] for i in indices], dim=axis)).sum(axis + 1)
            for part, (_, indices) in zip(self.parts, self.family.groups)
        )

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        return self._concat_blocks(part.sample(sample_shape) for part in self.parts)

    @property
    def mode(self) -> Tensor:
        """The product's mode is the concatenation of the blocks' modes."""
        return self._concat_blocks(part.mode for part in self.parts)

    @property
    def mean(self) -> Tensor:
        return self._concat_blocks(part.mean for part in self.parts)

    @property
    def variance(self) -> Tensor:
        return self._concat_blocks(part.variance for part in self.parts)


@register_kl(BlockMePoly, BlockMePoly)
def _kl_block_block(p: BlockMePoly, q: BlockMePoly) -> Tensor:
    """Sum of the blocks' exact KLs (independent factors)."""
    if not p.family.same_family(q.family):
        raise ValueError(f"KL between block products of different families: {p.family.config} vs {q.family.config}")
    return sum(kl_divergence(a, b).sum(0) for a, b in zip(p.parts, q.parts))
