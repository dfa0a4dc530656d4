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

Corners, as for torch's own distributions:

* ``torch.func``: ``grad``, ``jacrev`` and ``vmap`` work through functions that build a
  ``MePoly`` and return ``log_prob`` or ``entropy()`` (per-sample gradients, ensembles).
* An empty batch (``natural_params`` of shape ``(0, F)``) gives empty results of the right shapes.
* The normalizer uses the family's tensors in the dtype and device of ``natural_params``
  (:meth:`~mepoly_dist.MePolyFamily.node_operator_for`), so moving the family later
  (``family.double()``) does not break a distribution built before; ``sample()`` and ``mode``
  work in the family's current dtype and device (where its caches are) and return values in
  those of ``natural_params``.
* Rows whose parameters are not all finite (possible with ``validate_args=False``) give NaN
  log-densities, entropies, modes and samples, never plausible-looking values.
* No ``rsample``, ``cdf`` or ``icdf``: each raises ``NotImplementedError`` saying why and
  what to use instead.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.exp_family import ExponentialFamily
from torch.distributions.kl import register_kl
from torch.distributions.utils import lazy_property

from .family import MePolyFamily
from .normalizer import asymptotic_error, expectation, log_partition_and_entropy
from .quadrature import GaussLegendreRule, QuadratureWarning
from .zoom import BoxRule, zoom_boxes

__all__ = ["MePoly", "finite_vector", "cube"]


class _Finite(constraints.Constraint):
    """Finite real values: rejects NaN and +-inf (``constraints.real`` lets inf through)."""

    def check(self, value):
        return torch.isfinite(value)


class _Independent(constraints._IndependentConstraint):
    """``constraints.independent`` that also checks tensors with no elements (an empty batch):
    torch's reshapes the result to ``(..., -1)``, which is ambiguous for zero elements."""

    def check(self, value):
        if value.numel() == 0:
            return torch.ones(value.shape[: value.dim() - self.event_dim], dtype=torch.bool, device=value.device)
        return super().check(value)


# transforms to and from the constraint, as for torch's independent constraint
for _registry in (biject_to, transform_to):
    _registry.register(
        _Independent,
        lambda c, registry=_registry: registry(constraints.independent(c.base_constraint, c.reinterpreted_batch_ndims)),
    )

#: constraint on natural parameters: a vector of finite reals
finite_vector = _Independent(_Finite(), 1)
#: support of MePoly: points of the cube ``[-1, 1]^D``
cube = _Independent(constraints.interval(-1.0, 1.0), 1)


class _OnTheCube:
    """What MePoly and its block products share: a finite natural-parameter vector, support on the
    cube, and ``rsample``, ``cdf`` and ``icdf`` that raise ``NotImplementedError`` with the reason and
    the alternative (torch's defaults raise a bare ``NotImplementedError``)."""

    arg_constraints = {"natural_params": finite_vector}
    support = cube
    has_rsample = False

    def rsample(self, sample_shape=torch.Size()):
        raise NotImplementedError(
            f"{type(self).__name__} has no rsample (has_rsample=False): samples come from rejection sampling "
            "(mepoly_dist.sampling), whose accept/reject steps are not differentiable in the natural parameters. "
            "Use score-function (likelihood-ratio) gradients through log_prob, as PPO, A2C and TRPO do, and "
            "sample() for draws."
        )

    def cdf(self, value):
        raise NotImplementedError(
            f"{type(self).__name__} has no cdf: the distribution function of a polynomial exponential family on "
            "[-1, 1]^D is a D-fold integral of exp(lambda . phi(x)) with no closed form. Use log_prob for "
            "densities, sample() for draws, or the quadrature expectations (mean, variance, moments)."
        )

    def icdf(self, value):
        raise NotImplementedError(
            f"{type(self).__name__} has no icdf: there is no closed-form CDF to invert in D dimensions (nor a "
            "quantile function of a D-dimensional point). Use sample() for draws."
        )


class MePoly(_OnTheCube, ExponentialFamily):
    r"""Maximum-entropy polynomial distribution on :math:`[-1, 1]^D`.

    Args:
        natural_params: :math:`\lambda`, shape ``batch_shape + (family.num_params,)``, in the
            family's device and dtype (when built; the family may move afterwards).
        family: the :class:`~mepoly_dist.MePolyFamily` (dimension, order, basis, quadrature).
        validate_args: as in ``torch.distributions`` (NaN/inf parameters and actions of the
            wrong shape or outside the cube raise ``ValueError``).

    Example::

        >>> family = MePolyFamily(dim=2, order=6)
        >>> dist = MePoly(torch.zeros(family.num_params), family)
        >>> dist.entropy()  # uniform on the square: 2 log 2
        tensor(1.3863)
    """

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
        #: an unresolved row raises instead of warning only when ``validate_args=True`` is passed
        #: (torch's default validation, on under ``__debug__``, warns)
        self._strict_quadrature = validate_args is True
        super().__init__(natural_params.shape[:-1], torch.Size((family.dim,)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MePoly, _instance)
        batch_shape = torch.Size(batch_shape)
        new.natural_params = self.natural_params.expand(batch_shape + (self.family.num_params,))
        new.family = self.family
        new._strict_quadrature = self._strict_quadrature
        super(MePoly, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # -- normalizer ---------------------------------------------------------------------
    def _flat_params(self) -> Tensor:
        return self.natural_params.reshape(-1, self.family.num_params)

    @lazy_property
    def _normalized(self):
        """``(A, H, error, level)`` per flat row, and the rows' boxes in ``_boxes``.

        All rows are first computed on the family's screening rule where it has one (level -1,
        :meth:`MePolyFamily.screening_family`), and those it does not resolve on the family's rule
        (level 0, box: the cube).  Rows whose
        error estimate exceeds ``family.tolerance_for()`` are recomputed: with a Gauss-Legendre
        rule, on a box around their mass (:mod:`mepoly_dist.zoom`) with the family's points per
        axis and then ``2^k`` times as many (level ``k``, up to ``family.max_nodes``); with other
        rules, on the family's rule refined ``k`` times (:meth:`MePolyFamily.refined_family`).
        Each time a row keeps the result with the smaller estimate.  The estimate at level
        ``k > 0`` is the smaller of the rule's embedded estimate and the one from the gap to level
        ``k - 1`` (:func:`~mepoly_dist.normalizer.asymptotic_error`)."""
        fam, lam = self.family, self._flat_params()
        tolerance = fam.tolerance_for(lam.dtype)
        screen = fam.screening_family() if math.isfinite(tolerance) else None
        if screen is None:
            A, H, error = _normalize_on(fam, lam)
            level = torch.zeros(lam.shape[0], dtype=torch.long, device=lam.device)
        else:
            # level -1: the screening rule; rows it does not resolve go to the family's rule
            A, H, error = _normalize_on(screen, lam)
            level = torch.full((lam.shape[0],), -1, dtype=torch.long, device=lam.device)
            unresolved = ~(error <= tolerance)
            if _any(unresolved):
                rows = unresolved.nonzero().squeeze(-1)
                A_f, H_f, error_f = _normalize_on(fam, lam[rows])
                A, H, error = A.index_put((rows,), A_f), H.index_put((rows,), H_f), error.index_put((rows,), error_f)
                level = level.index_put((rows,), torch.zeros_like(rows))
        flagged = error > tolerance  # NaN rows (non-finite parameters) are not flagged
        self._boxes = None

        def adopt(rows, A_new, H_new, error_new, k):
            nonlocal A, H, error, level, flagged
            better = error_new < error[rows]
            rows, A_new, H_new, error_new = rows[better], A_new[better], H_new[better], error_new[better]
            A, H, error = A.index_put((rows,), A_new), H.index_put((rows,), H_new), error.index_put((rows,), error_new)
            level = level.index_put((rows,), torch.full_like(rows, k))
            flagged = flagged.index_put((rows,), error_new > tolerance)
            return better

        zoom = _zoomable(fam)
        if zoom and _any(flagged):
            cube = torch.ones(lam.shape[0], fam.dim, dtype=lam.dtype, device=lam.device)
            rows = flagged.nonzero().squeeze(-1)
            lo, hi = zoom_boxes(lam[rows], fam.quadrature.points, fam._exponents_on(lam.device), fam.order, fam.basis)
            # level 0 on the box; a row whose box did not help keeps the cube (its result and its box)
            better = adopt(rows, *_normalize_on_box(fam, lam[rows], lo, hi, fam.quadrature.points), 0)
            lo, hi = torch.where(better[:, None], lo, -1.0), torch.where(better[:, None], hi, 1.0)
            self._boxes = (-cube).index_put((rows,), lo), cube.index_put((rows,), hi)
        k = 1
        self._box_points = [fam.quadrature.points] if zoom else None  # points per axis at each level
        while _any(flagged):
            rows = flagged.nonzero().squeeze(-1)
            if zoom:
                # twice the points per axis, or at the end the most that fit in max_nodes
                previous = self._box_points[-1]
                points = min(2 * previous, _most_points(fam.dim, fam.max_nodes))
                if points <= previous:
                    break
                A_r, H_r, error_r = _normalize_on_box(fam, lam[rows], self._boxes[0][rows], self._boxes[1][rows], points)
                exponent = points / previous  # Gauss-Legendre: the error falls like rho^(-2 points)
                self._box_points.append(points)
            else:
                refined = fam.refined_family(k)
                if refined is None:
                    break
                A_r, H_r, error_r = _normalize_on(refined, lam[rows])
                exponent = fam.quadrature.refined_exponent
            # a finer rule: once both converge geometrically, the error is about the coarser one's
            # to the power `exponent`, which their gap measures
            gap = A_r.detach() - A.detach()[rows]
            adopt(rows, A_r, H_r, torch.minimum(error_r, asymptotic_error(gap, exponent)), k)
            k += 1
        if _any(flagged):
            count, worst = int(flagged.sum()), float(error[flagged].max())
            message = (
                f"MePoly: the log-partition of {count} of {lam.shape[0]} rows could not be computed to the tolerance "
                f"{tolerance:g} nats (largest estimated error {worst:.3g} nats, quadrature {fam.quadrature.spec!r}"
                f"{' zoomed and' if zoom else ''} refined {k - 1} times, up to max_nodes={fam.max_nodes}): their density is "
                "sharper than the rules resolve. Their log_prob, entropy and KL are off by up to about that much; pass a "
                "larger max_nodes or bound the natural parameters"
            )
            if self._strict_quadrature:
                raise ValueError(message)
            warnings.warn(message, QuadratureWarning, stacklevel=4)
        return A, H, error, level

    def _expect(self, first_two: bool = False) -> Tensor:
        """``E_p[phi]``, or with ``first_two`` ``E_p[x]`` and ``E_p[x^2]`` (``(..., 2D)``), each row on
        the rule that computed its log-partition."""
        lam, fam = self._flat_params(), self.family
        dtype, device = lam.dtype, lam.device

        def values(family):
            if not first_two:
                return None
            nodes = family.nodes_for(dtype, device)
            return torch.cat([nodes, nodes * nodes], dim=-1)

        level = self._normalized[3]
        # the rows' rules: the screening rule (level -1), the family's rule (level 0 on the cube),
        # or a finer one (a box rule, or the refined family); all rows start on the rule most used
        screened = level < 0
        base = level == 0
        if self._boxes is not None:
            base &= (self._boxes[1] - self._boxes[0] == 2).all(-1)
        screen = fam.screening_family()
        first, other, other_rows = (screen, fam, base) if screen is not None and _any(screened) else (fam, screen, screened)
        out = _expect_on(first, lam, values(first))
        if other is not None and _any(other_rows):
            rows = other_rows.nonzero().squeeze(-1)
            out = out.index_put((rows,), _expect_on(other, lam[rows], values(other)))
        finer = ~(screened | base)
        if lam.shape[0] and _any(finer):
            for k in level[finer].unique().tolist():
                rows = ((level == k) & finer).nonzero().squeeze(-1)
                if self._boxes is not None:
                    lo, hi = self._boxes[0][rows], self._boxes[1][rows]
                    new = _expect_on_box(fam, lam[rows], lo, hi, self._box_points[k], first_two)
                else:
                    refined = fam.refined_family(k)
                    new = _expect_on(refined, lam[rows], values(refined))
                out = out.index_put((rows,), new)
        return out.reshape(*self.batch_shape, out.shape[-1])

    def _normalize(self, natural_params: Tensor):
        """``(A, H)`` of other parameters on the family's own rule (torch's ``ExponentialFamily`` hook)."""
        A, H, _ = _normalize_on(self.family, natural_params.reshape(-1, self.family.num_params))
        return A.reshape(natural_params.shape[:-1]), H.reshape(natural_params.shape[:-1])

    @property
    def quadrature_error(self) -> Tensor:
        """Estimated error (nats) of each row's log-partition, shape ``batch_shape``: the gap to
        the embedded rule of the rule that computed it (see :mod:`mepoly_dist.quadrature`)."""
        return self._normalized[2].reshape(self.batch_shape)

    @property
    def quadrature_nodes(self) -> Tensor:
        """Quadrature nodes each row's log-partition used, shape ``batch_shape``: the family's
        screening rule's or its rule's, or those of the finer rule a row needed (on the cube or on
        a box around its mass)."""
        level = self._normalized[3]
        if self._boxes is not None:
            per_level = torch.tensor(self._box_points, device=level.device) ** self.family.dim
            nodes = per_level[level.clamp_min(0)]
        else:
            counts = [self.family.refined_family(k).quadrature.num_nodes if k else self.family.quadrature.num_nodes
                      for k in range(max(int(level.max()), 0) + 1 if level.numel() else 1)]
            nodes = torch.tensor(counts, device=level.device)[level.clamp_min(0)]
        screen = self.family.screening_family()
        if screen is not None:
            nodes = torch.where(level < 0, screen.quadrature.num_nodes, nodes)
        return nodes.reshape(self.batch_shape)

    @lazy_property
    def _log_partition_and_entropy(self):
        A, H = self._normalized[:2]
        return A.reshape(self.batch_shape), H.reshape(self.batch_shape)

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
        return self._expect(first_two=True)

    @property
    def mean(self) -> Tensor:
        return self._first_two_moments[..., : self.family.dim]

    @property
    def variance(self) -> Tensor:
        m1, m2 = self._first_two_moments.split(self.family.dim, dim=-1)
        return m2 - m1 * m1

    def _rows_for_search(self) -> tuple[Tensor, Tensor]:
        """The parameters as ``(rows, F)`` for the sampler and the mode search: detached, in the
        family's current dtype and device (where their caches live), rows with non-finite
        entries replaced by zeros (a stand-in; their results become NaN); and the finite-row mask."""
        fam = self.family
        flat = self.natural_params.detach().reshape(-1, fam.num_params)
        finite = torch.isfinite(flat).all(-1)
        flat = torch.where(finite[:, None], flat, torch.zeros_like(flat))
        return flat.to(dtype=fam.dtype, device=fam.device), finite

    def _as_result(self, points: Tensor, finite: Tensor) -> Tensor:
        """Points ``(..., rows, D)`` from :meth:`_rows_for_search` back in the parameters' dtype
        and device, NaN for the rows whose parameters were not finite."""
        points = points.to(dtype=self.natural_params.dtype, device=self.natural_params.device)
        return points.masked_fill(~finite[:, None], float("nan"))

    @property
    def mode(self) -> Tensor:
        """Highest-density point, refined by projected Newton steps beyond the grid spacing
        (NaN for rows whose parameters are not finite)."""
        from .mode import find_mode

        flat, finite = self._rows_for_search()
        mode = find_mode(flat, self.family) if flat.shape[0] else flat.new_empty(0, self.family.dim)
        return self._as_result(mode, finite).reshape(self.batch_shape + self.event_shape)

    # -- density ------------------------------------------------------------------------
    def energy(self, value: Tensor) -> Tensor:
        r"""Unnormalized log-density :math:`\lambda^\top\phi(x)` (broadcasts like ``log_prob``)."""
        if self._validate_args:
            self._validate_sample(value)
        return (self.family.features(value) * self.natural_params).sum(-1)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.energy(value) - self.log_partition

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        """Continuous samples (not snapped to quadrature nodes); see :mod:`mepoly_dist.sampling`.
        NaN for rows whose parameters are not finite."""
        return self.sample_with_stats(sample_shape)[0]

    def sample_with_stats(self, sample_shape=torch.Size()):
        """:meth:`sample` and the sampler's :class:`~mepoly_dist.sampling.SamplingStats` for this
        call: proposals drawn, envelope violations detected (and corrected), rows drawn again."""
        from .sampling import sample_mepoly

        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            flat, finite = self._rows_for_search()
            x, stats = sample_mepoly(flat, self.family, int(torch.Size(sample_shape).numel()), return_stats=True)  # (n, B, D)
            x = self._as_result(x, finite)
        return x.reshape(shape), stats

    # -- ExponentialFamily hooks (used by torch's generic helpers) ---------------------------
    @property
    def _natural_params(self):
        return (self.natural_params,)

    def _log_normalizer(self, natural_params):
        return self._normalize(natural_params)[0]

    @property
    def _mean_carrier_measure(self):
        return 0.0


def _normalize_on(family: MePolyFamily, lam: Tensor):
    """``(A, H, error)`` of flat rows ``lam`` ``(B, F)`` on ``family``'s rule, in ``lam``'s dtype and device."""
    rows, chunk = family.tile_for(lam.shape[0])
    dtype, device = lam.dtype, lam.device
    return log_partition_and_entropy(
        lam, family.node_operator_for(dtype, device), family.log_weights_for(dtype, device), chunk, rows,
        embedded=family.embedded_for(dtype, device), with_error=True,
    )


def _most_points(dim: int, max_nodes: int) -> int:
    """The most points per axis of a tensor rule with at most ``max_nodes`` nodes."""
    points = int(round(max_nodes ** (1.0 / dim)))
    while points**dim > max_nodes:
        points -= 1
    return max(points, 1)


def _zoomable(family: MePolyFamily) -> bool:
    """Box rules map the family's rule onto boxes: a tensor Gauss-Legendre rule."""
    return isinstance(family.quadrature, GaussLegendreRule) and family.embedded_rule is not None


def _box_rules(family: MePolyFamily, lo: Tensor, hi: Tensor, points: int) -> tuple[BoxRule, BoxRule, float]:
    """Gauss-Legendre with ``points`` per axis and its embedded rule (``ceil(3 points / 4)``, as
    :class:`~mepoly_dist.quadrature.GaussLegendreRule`) on the boxes ``[lo, hi]``, and the
    embedded rule's convergence ratio."""
    exponents = family._exponents_on(lo.device)
    embedded = GaussLegendreRule(1, points)
    return (BoxRule(lo, hi, points, exponents, family.order, family.basis),
            BoxRule(lo, hi, embedded.embedded_points, exponents, family.order, family.basis), embedded.embedded_exponent)


def _normalize_on_box(family: MePolyFamily, lam: Tensor, lo: Tensor, hi: Tensor, points: int):
    """``(A, H, error)`` of flat rows on ``points``-point Gauss-Legendre rules on their boxes."""
    main, embedded, exponent = _box_rules(family, lo, hi, points)
    _, chunk = family.tile_for(lam.shape[0])
    return log_partition_and_entropy(
        lam, main.operator, main.log_weights(), chunk, embedded=(embedded.operator, embedded.log_weights(), exponent), with_error=True,
    )


def _expect_on_box(family: MePolyFamily, lam: Tensor, lo: Tensor, hi: Tensor, points: int, first_two: bool) -> Tensor:
    """``E_p[phi]`` (or ``E_p[x], E_p[x^2]``) of flat rows on their box rules."""
    main, _, _ = _box_rules(family, lo, hi, points)
    _, chunk = family.tile_for(lam.shape[0])
    if not first_two:
        return expectation(lam, main.operator, main.log_weights(), None, chunk)
    # x_d and x_d^2 from the tables' first two columns: b_1 = x and b_2 = x^2 (monomial) or
    # P_2 = (3 x^2 - 1) / 2 (Legendre)
    eye = torch.eye(family.dim, dtype=torch.long, device=lam.device)
    m = expectation(lam, main.operator, main.log_weights(), main.operator.with_exponents(torch.cat([eye, 2 * eye])), chunk)
    m1, m2 = m.split(family.dim, dim=-1)
    return torch.cat([m1, (2 * m2 + 1) / 3 if family.basis == "legendre" else m2], dim=-1)


def _expect_on(family: MePolyFamily, lam: Tensor, values: Tensor | None) -> Tensor:
    rows, chunk = family.tile_for(lam.shape[0])
    dtype, device = lam.dtype, lam.device
    return expectation(lam, family.node_operator_for(dtype, device), family.log_weights_for(dtype, device), values, chunk, rows)


def _all(mask: Tensor) -> bool:
    """``bool(mask.all())``, or True under ``torch.func.vmap`` (see :func:`_any`)."""
    try:
        return bool(mask.all())
    except RuntimeError:
        return True


def _any(mask: Tensor) -> bool:
    """``bool(mask.any())``, or False under ``torch.func.vmap``, where a data-dependent branch is
    impossible: there every row keeps the family's own rule (and its error estimate)."""
    try:
        return bool(mask.any())
    except RuntimeError:  # vmap: "data-dependent control flow is not supported"
        return False


@register_kl(MePoly, MePoly)
def _kl_mepoly_mepoly(p: MePoly, q: MePoly) -> Tensor:
    r""":math:`\mathrm{KL}(p\,\|\,q) = A(\lambda_q) - A(\lambda_p) - (\lambda_q - \lambda_p)^\top \mathbb{E}_p[\phi]`,
    the Bregman divergence of :math:`A`; exact on the shared quadrature measure and
    differentiable twice in both parameter sets."""
    if not p.family.same_family(q.family):
        raise ValueError(f"KL between MePoly distributions of different families: {p.family.config} vs {q.family.config}")
    return q.log_partition - p.log_partition - ((q.natural_params - p.natural_params) * p.moments).sum(-1)
