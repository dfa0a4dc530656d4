r"""``MePoly``: the polynomial exponential-family density as a ``torch.distributions.Distribution``.

.. math::

    p_\lambda(x) = \exp\big(\lambda^\top \phi(x) - A(\lambda)\big),
    \qquad A(\lambda) = \log \int_{[-1,1]^D} \exp\big(\lambda^\top\phi(x)\big)\,dx
    \qquad \text{(paper eq. 7-9)},

with the integral evaluated by the family's quadrature rule (eq. 18) through the
streaming normalizer of :mod:`mepoly_dist.normalizer`.  ``batch_shape`` is
``natural_params.shape[:-1]`` and ``event_shape`` is ``(D,)``.

Everything derived from the normalizer (``log_partition``, ``entropy()``, ``moments``,
``mean``, ``variance``, the KL) is an expectation under the quadrature measure, so these
quantities are mutually consistent (``entropy = A - lambda . moments`` exactly, KL is
exactly zero between equal parameters) and differentiable twice in ``natural_params``.
``log_partition`` and ``entropy()`` share one pass over the nodes per distribution object.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.exp_family import ExponentialFamily
from torch.distributions.kl import register_kl
from torch.distributions.utils import lazy_property

from .family import MePolyFamily
from .normalizer import expectation, log_partition_and_entropy

__all__ = ["MePoly", "finite_vector"]


class _Finite(constraints.Constraint):
    """Finite real values: rejects NaN and +-inf (``constraints.real`` lets inf through)."""

    def check(self, value):
        return torch.isfinite(value)


#: constraint on natural parameters: a vector of finite reals
finite_vector = constraints.independent(_Finite(), 1)


class MePoly(ExponentialFamily):
    r"""Maximum-entropy polynomial distribution on :math:`[-1, 1]^D`.

    Args:
        natural_params: :math:`\lambda`, shape ``batch_shape + (family.num_params,)``, in the
            family's device and dtype.
        family: the :class:`~mepoly_dist.MePolyFamily` (dimension, order, basis, quadrature).
        validate_args: as in ``torch.distributions`` (NaN/inf parameters and actions of the
            wrong shape or outside the cube raise ``ValueError``).

    Example::

        >>> family = MePolyFamily(dim=2, order=6)
        >>> dist = MePoly(torch.zeros(family.num_params), family)
        >>> dist.entropy()  # uniform on the square: 2 log 2
        tensor(1.3863)
    """

    arg_constraints = {"natural_params": finite_vector}
    support = constraints.independent(constraints.interval(-1.0, 1.0), 1)
    has_rsample = False

    def __init__(self, natural_params: Tensor, family: MePolyFamily, validate_args=None):
        if not isinstance(family, MePolyFamily):
            raise TypeError(f"family must be a MePolyFamily, got {type(family).__name__}")
        if not isinstance(natural_params, Tensor) or not natural_params.is_floating_point():
            raise ValueError("natural_params must be a floating-point tensor")
        if natural_params.dim() < 1 or natural_params.shape[-1] != family.num_params:
            raise ValueError(
                f"natural_params must have last dimension num_params = C(order + dim, dim) = {family.num_params} "
                f"for dim={family.dim}, order={family.order}; got shape {tuple(natural_params.shape)}"
            )
        if natural_params.dtype != family.dtype or natural_params.device != family.device:
            raise ValueError(
                f"natural_params ({natural_params.dtype}, {natural_params.device}) must match the family's "
                f"dtype and device ({family.dtype}, {family.device}); move one with .to(...)"
            )
        self.natural_params = natural_params
        self.family = family
        super().__init__(natural_params.shape[:-1], torch.Size((family.dim,)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MePoly, _instance)
        batch_shape = torch.Size(batch_shape)
        new.natural_params = self.natural_params.expand(batch_shape + (self.family.num_params,))
        new.family = self.family
        super(MePoly, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # -- normalizer ---------------------------------------------------------------------
    def _expect(self, values: Tensor | None = None) -> Tensor:
        fam = self.family
        rows, chunk = fam.tile_for(self.batch_shape.numel())
        return expectation(self.natural_params, fam.node_operator, fam.log_weights, values, chunk, rows)

    def _normalize(self, natural_params: Tensor):
        fam = self.family
        rows, chunk = fam.tile_for(natural_params.shape[:-1].numel())
        return log_partition_and_entropy(natural_params, fam.node_operator, fam.log_weights, chunk, rows)

    @lazy_property
    def _log_partition_and_entropy(self):
        return self._normalize(self.natural_params)

    @property
    def log_partition(self) -> Tensor:
        r""":math:`A(\lambda)`, shape ``batch_shape``."""
        return self._log_partition_and_entropy[0]

    def entropy(self) -> Tensor:
        r""":math:`H = A(\lambda) - \lambda^\top \nabla A(\lambda)`, exact on the quadrature measure."""
        return self._log_partition_and_entropy[1]

    @lazy_property
    def moments(self) -> Tensor:
        r""":math:`\mathbb{E}[\phi(x)] = \nabla A(\lambda)`, shape ``batch_shape + (F,)``."""
        return self._expect()

    @lazy_property
    def _first_two_moments(self) -> Tensor:
        nodes = self.family.nodes
        return self._expect(torch.cat([nodes, nodes * nodes], dim=-1))

    @property
    def mean(self) -> Tensor:
        return self._first_two_moments[..., : self.family.dim]

    @property
    def variance(self) -> Tensor:
        m1, m2 = self._first_two_moments.split(self.family.dim, dim=-1)
        return m2 - m1 * m1

    @property
    def mode(self) -> Tensor:
        """Highest-density point, refined by projected Newton steps beyond the grid spacing."""
        from .mode import find_mode

        return find_mode(self.natural_params, self.family)

    # -- density ------------------------------------------------------------------------
    def energy(self, value: Tensor) -> Tensor:
        r"""Unnormalized log-density :math:`\lambda^\top\phi(x)` (broadcasts like ``log_prob``)."""
        if self._validate_args:
            self._validate_sample(value)
        return (self.family.features(value) * self.natural_params).sum(-1)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.energy(value) - self.log_partition

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        """Continuous samples (not snapped to quadrature nodes); see :mod:`mepoly_dist.sampling`."""
        from .sampling import sample_mepoly

        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            flat = self.natural_params.reshape(-1, self.family.num_params)
            n = int(torch.Size(sample_shape).numel())
            x = sample_mepoly(flat, self.family, n)  # (n, B, D)
        return x.reshape(shape)

    # -- ExponentialFamily hooks (used by torch's generic helpers) ---------------------------
    @property
    def _natural_params(self):
        return (self.natural_params,)

    def _log_normalizer(self, natural_params):
        return self._normalize(natural_params)[0]

    @property
    def _mean_carrier_measure(self):
        return 0.0


@register_kl(MePoly, MePoly)
def _kl_mepoly_mepoly(p: MePoly, q: MePoly) -> Tensor:
    r""":math:`\mathrm{KL}(p\,\|\,q) = A(\lambda_q) - A(\lambda_p) - (\lambda_q - \lambda_p)^\top \mathbb{E}_p[\phi]`,
    the Bregman divergence of :math:`A`; exact on the shared quadrature measure and
    differentiable twice in both parameter sets."""
    if not p.family.same_family(q.family):
        raise ValueError(f"KL between MePoly distributions of different families: {p.family.config} vs {q.family.config}")
    return q.log_partition - p.log_partition - ((q.natural_params - p.natural_params) * p.moments).sum(-1)
