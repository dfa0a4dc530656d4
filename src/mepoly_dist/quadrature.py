r"""Quadrature rules on the cube :math:`[-1, 1]^D` for the log-partition (paper eq. 9, 18).

Every rule is a small object holding ``nodes`` ``(N, D)`` and ``log_weights`` ``(N,)``
(float64 tensors) such that

.. math::

    \int_{[-1,1]^D} f(x)\,dx \approx \sum_{i=1}^N w_i f(x_i),
    \qquad \log Z(\lambda) \approx \operatorname{logsumexp}_i\big(\log w_i + \lambda^\top \phi(x_i)\big).

The weights are positive (so they live in log space) and are rescaled to sum to exactly
:math:`2^D`, the volume of the cube, so that :math:`\lambda = 0` gives the uniform
density with entropy :math:`D \log 2` for every rule.

Rules:

* :class:`TrapezoidRule` -- the paper's tensor-product trapezoid grid (256 points per
  dimension in its code).
* :class:`GaussLegendreRule` -- tensor-product Gauss-Legendre (``numpy.polynomial.legendre.leggauss``).
* :class:`CompositeGaussLegendreRule` -- Gauss-Legendre on equal panels, robust for sharp peaks.
* :class:`SobolRule` -- scrambled Sobol' points (randomized quasi-Monte Carlo from
  ``torch.quasirandom.SobolEngine``), whose cost does not grow exponentially with D; the rule for D = 4..8.

The three tensor-product rules also keep their 1-D nodes in ``axis_nodes`` (``None`` for
other rules): their ``nodes`` are all tuples ``(t[i_1], ..., t[i_D])`` in row-major order
(the last index fastest), which lets :class:`~mepoly_dist.node_features.KroneckerNodeFeatures`
factorize the normalizer's products.

**Embedded rules and error estimates.**  Every rule names a second, coarser rule of its kind,
:meth:`QuadratureRule.embedded` (Gauss-Legendre: ``ceil(3n/4)`` points per axis; composite
Gauss-Legendre: ``ceil(3p/4)`` points per panel; trapezoid: half the points; Sobol': the first
half of the same scrambled sequence).  The normalizer evaluates the log-partition :math:`A'` on it
(energies only, no moments: about a fifth of the main pass for Gauss-Legendre) and turns the gap
:math:`g = |A - A'|` into an estimate of the error of :math:`A` with
:func:`~mepoly_dist.normalizer.asymptotic_error`: :math:`g` itself, or, once both rules converge
geometrically, :math:`g` to the power of their convergence ratio (``embedded_exponent``; the
points ratio for Gauss-Legendre, 1 for the others), scaled to stay conservative.

:meth:`QuadratureRule.refined` gives the same kind of rule with about twice the points per axis
(the escalation step of :class:`~mepoly_dist.MePoly` for rows whose estimate is too large), and
``refined_exponent`` the convergence ratio of that pair (2 for Gauss-Legendre, 1 otherwise).

Pick a rule by object or by name with :func:`make_rule` (``"gauss_legendre:64"``,
``"composite_gauss_legendre:16x4"``, ``"trapezoid:256"``, ``"sobol:8192"``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.polynomial import legendre
from torch import Tensor

__all__ = [
    "QuadratureWarning",
    "QuadratureRule",
    "TrapezoidRule",
    "GaussLegendreRule",
    "CompositeGaussLegendreRule",
    "SobolRule",
    "RULES",
    "make_rule",
    "default_rule",
]


class QuadratureWarning(RuntimeWarning):
    """Some rows' log-partitions could not be computed to the family's tolerance: their density
    is sharper than the finest rule within the node budget resolves.  The message names how many
    rows and the largest estimated error; ``MePoly.quadrature_error`` has it per row."""


class QuadratureRule:
    """A positive-weight quadrature rule on ``[-1, 1]^dim``.

    Subclasses compute float64 ``nodes`` and ``weights`` with numpy and pass them to
    this constructor; the weights are renormalized to sum to ``2**dim``.
    """

    #: short name used by :func:`make_rule`
    name = "custom"
    #: for a tensor-product rule, the ``(n,)`` float64 nodes of its 1-D factor (the same on
    #: every axis; ``nodes`` lists their products in row-major order); None otherwise
    axis_nodes: Tensor | None = None

    #: convergence ratio of this rule to :meth:`embedded` (error ~ embedded error ** ratio)
    embedded_exponent = 1.0
    #: convergence ratio of :meth:`refined` to this rule
    refined_exponent = 1.0

    def __init__(self, nodes: np.ndarray, weights: np.ndarray):
        nodes = np.asarray(nodes, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        if nodes.ndim != 2 or weights.shape != (nodes.shape[0],):
            raise ValueError(
                f"a quadrature rule needs nodes of shape (N, D) and weights of shape (N,); "
                f"got {nodes.shape} and {weights.shape}"
            )
        if not np.all(weights > 0):
            raise ValueError("quadrature weights must be positive (they are stored as log-weights)")
        if np.any(np.abs(nodes) > 1):
            raise ValueError("quadrature nodes must lie in the cube [-1, 1]^D")
        dim = nodes.shape[1]
        log_weights = np.log(weights)
        log_weights += dim * math.log(2.0) - np.logaddexp.reduce(log_weights)
        self.nodes = torch.from_numpy(nodes)
        self.log_weights = torch.from_numpy(log_weights)

    @property
    def points_per_axis(self) -> int | None:
        """Nodes per axis of a tensor-product rule (None for other rules)."""
        return None if self.axis_nodes is None else len(self.axis_nodes)

    def refined(self) -> "QuadratureRule":
        """The same kind of rule with about twice the nodes per axis."""
        raise NotImplementedError(f"{type(self).__name__} has no refinement")

    def embedded(self) -> "QuadratureRule | None":
        """The coarser rule whose log-partition estimates this one's error (None: no estimate)."""
        return None

    @property
    def dim(self) -> int:
        return self.nodes.shape[1]

    @property
    def num_nodes(self) -> int:
        return self.nodes.shape[0]

    @property
    def spec(self) -> str:
        """The string :func:`make_rule` accepts to rebuild this rule."""
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, spec={self.spec!r}, num_nodes={self.num_nodes})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, QuadratureRule):
            return NotImplemented
        return type(self) is type(other) and self.spec == other.spec and self.dim == other.dim

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec, self.dim))


def _tensor_product(points: np.ndarray, weights: np.ndarray, dim: int):
    """Nodes and weights of the tensor-product rule, in row-major order of the 1-D indices."""
    grids = np.meshgrid(*([points] * dim), indexing="ij")
    nodes = np.stack([g.reshape(-1) for g in grids], axis=-1)
    wgrids = np.meshgrid(*([weights] * dim), indexing="ij")
    w = np.prod(np.stack([g.reshape(-1) for g in wgrids], axis=-1), axis=-1)
    return nodes, w


def _positive_int(value, what: str) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class TrapezoidRule(QuadratureRule):
    """Tensor-product trapezoid rule with ``points`` equally spaced nodes per dimension
    (endpoints included), as in the paper's implementation (appendix, eq. 18)."""

    name = "trapezoid"

    def __init__(self, dim: int, points: int = 256):
        self.points = _positive_int(points, "points")
        if self.points < 2:
            raise ValueError("the trapezoid rule needs at least 2 points per dimension")
        x = np.linspace(-1.0, 1.0, self.points)
        w = np.full(self.points, 2.0 / (self.points - 1))
        w[[0, -1]] *= 0.5
        super().__init__(*_tensor_product(x, w, _positive_int(dim, "dim")))
        self.axis_nodes = torch.from_numpy(x)

    @property
    def spec(self) -> str:
        return f"trapezoid:{self.points}"

    def refined(self) -> "TrapezoidRule":
        return TrapezoidRule(self.dim, 2 * self.points - 1)

    def embedded(self) -> "TrapezoidRule | None":
        return TrapezoidRule(self.dim, (self.points + 1) // 2) if self.points >= 4 else None


class GaussLegendreRule(QuadratureRule):
    """Tensor-product Gauss-Legendre rule with ``points`` nodes per dimension
    (exact for polynomials of degree ``2 * points - 1`` in each variable)."""

    name = "gauss_legendre"

    def __init__(self, dim: int, points: int = 64):
        self.points = _positive_int(points, "points")
        x, w = legendre.leggauss(self.points)
        super().__init__(*_tensor_product(x, w, _positive_int(dim, "dim")))
        self.axis_nodes = torch.from_numpy(x)
        self.embedded_points = math.ceil(3 * self.points / 4)
        self.embedded_exponent = self.points / self.embedded_points
        self.refined_exponent = 2.0

    @property
    def spec(self) -> str:
        return f"gauss_legendre:{self.points}"

    def refined(self) -> "GaussLegendreRule":
        return GaussLegendreRule(self.dim, 2 * self.points)

    def embedded(self) -> "GaussLegendreRule | None":
        return GaussLegendreRule(self.dim, self.embedded_points) if self.points >= 4 else None


class CompositeGaussLegendreRule(QuadratureRule):
    """Gauss-Legendre with ``points`` nodes on each of ``panels`` equal sub-intervals per
    dimension, tensorised.  Error is local to each panel, which keeps sharp peaks of
    the density from spoiling the whole integral."""

    name = "composite_gauss_legendre"

    def __init__(self, dim: int, panels: int = 16, points: int = 4):
        self.panels = _positive_int(panels, "panels")
        self.points = _positive_int(points, "points")
        x, w = legendre.leggauss(self.points)
        half = 1.0 / self.panels
        centers = -1.0 + half * (2 * np.arange(self.panels) + 1)
        x1 = (centers[:, None] + half * x[None, :]).reshape(-1)
        w1 = np.tile(w * half, self.panels)
        super().__init__(*_tensor_product(x1, w1, _positive_int(dim, "dim")))
        self.axis_nodes = torch.from_numpy(x1)

    @property
    def spec(self) -> str:
        return f"composite_gauss_legendre:{self.panels}x{self.points}"

    def refined(self) -> "CompositeGaussLegendreRule":
        return CompositeGaussLegendreRule(self.dim, 2 * self.panels, self.points)

    def embedded(self) -> "CompositeGaussLegendreRule | None":
        if self.points >= 2:
            return CompositeGaussLegendreRule(self.dim, self.panels, math.ceil(3 * self.points / 4))
        return CompositeGaussLegendreRule(self.dim, self.panels // 2, 1) if self.panels >= 4 else None


class SobolRule(QuadratureRule):
    """Randomized quasi-Monte Carlo: ``num_nodes`` scrambled Sobol' points
    (``torch.quasirandom.SobolEngine``, Owen-scrambled; a power of two) with equal weights ``2**D / N``.

    The scrambling is drawn once from ``seed``, so the rule is a fixed, reproducible
    node set; its error decays close to ``1/N`` for smooth integrands in any dimension,
    which makes it the rule for D = 4..8 where tensor grids explode.
    """

    name = "sobol"

    def __init__(self, dim: int, num_nodes: int = 8192, seed: int = 0):
        num_nodes = _positive_int(num_nodes, "num_nodes")
        m = int(round(math.log2(num_nodes)))
        if 2**m != num_nodes:
            raise ValueError(f"a Sobol' rule needs a power-of-two number of nodes, got {num_nodes}")
        self.seed = int(seed)
        engine = torch.quasirandom.SobolEngine(_positive_int(dim, "dim"), scramble=True, seed=self.seed)
        unit = engine.draw_base2(m, dtype=torch.float64).numpy()
        super().__init__(2.0 * unit - 1.0, np.full(num_nodes, 1.0))

    @property
    def spec(self) -> str:
        return f"sobol:{self.num_nodes}" + (f":{self.seed}" if self.seed else "")

    def refined(self) -> "SobolRule":
        return SobolRule(self.dim, 2 * self.num_nodes, self.seed)

    def embedded(self) -> "SobolRule | None":
        # the first half of the same scrambled sequence, itself a net of N / 2 points
        return SobolRule(self.dim, self.num_nodes // 2, self.seed) if self.num_nodes >= 4 else None


RULES = {
    "trapezoid": TrapezoidRule,
    "gauss_legendre": GaussLegendreRule,
    "composite_gauss_legendre": CompositeGaussLegendreRule,
    "sobol": SobolRule,
}


#: default tensor Gauss-Legendre points per axis by dimension (more for orders above them)
DEFAULT_POINTS = {1: 256, 2: 80, 3: 20, 4: 9, 5: 6}
#: in low dimension the default is order-aware: at most this many points per axis per unit of
#: ``order + 1`` (a D = 2 order-2 head gets 30 x 30 nodes, order 4 gets 50 x 50, order >= 7 the
#: full 80 x 80), since a low-degree energy needs few nodes; sharper rows are refined anyway
POINTS_PER_ORDER = {1: 32, 2: 10}


def default_rule(dim: int, order: int | None = None, max_nodes: int | None = None) -> QuadratureRule:
    """The default rule for a dimension: the most accurate per node in
    ``benchmarks/results/normalizer/normalizer.md``, with at most about 8,192 nodes; ``order`` must be one
    it resolves (at least ``order + 1`` points per axis; a larger order gets that many).

    Tensor Gauss-Legendre wins per node up to D = 5 (the MePoly integrand is analytic, so its
    error falls exponentially with the points per axis); for D = 2, order 14, 80 points per axis
    (6,400 nodes) put the paper's lemniscate and two-moons targets within 2e-7 of a 1024^2
    reference (the paper's 65,536-node trapezoid grid: 1.7e-5).  From D = 6 on a tensor grid has
    too few points per axis and scrambled Sobol' points are more accurate.  Rows sharper than the
    rule resolves are caught by its embedded error estimate and recomputed on refined rules
    (:class:`~mepoly_dist.MePoly`).
    """
    if dim in DEFAULT_POINTS:
        points = DEFAULT_POINTS[dim]
        if order is not None and dim in POINTS_PER_ORDER:
            points = min(points, POINTS_PER_ORDER[dim] * (order + 1))
        if max_nodes is not None:  # the most points per axis with points^dim <= max_nodes
            points = min(points, next(p for p in range(points, 0, -1) if p**dim <= max_nodes or p == 1))
        return GaussLegendreRule(dim, points=max(points, 0 if order is None else order + 1))
    return SobolRule(dim, num_nodes=8192)


def make_rule(spec, dim: int, order: int | None = None, max_nodes: int | None = None) -> QuadratureRule:
    """Build a rule from ``None`` (the default for ``dim`` and ``order``), a rule object or a spec string.

    Spec strings are ``NAME`` or ``NAME:SIZE`` with NAME in :data:`RULES`:
    ``"trapezoid:256"``, ``"gauss_legendre:64"``, ``"composite_gauss_legendre:16x4"``
    (panels x points), ``"sobol:8192"`` or ``"sobol:8192:SEED"``.
    """
    if spec is None or spec == "default":
        return default_rule(dim, order, max_nodes)
    if isinstance(spec, QuadratureRule):
        if spec.dim != dim:
            raise ValueError(f"quadrature rule {spec!r} is for dim={spec.dim}, but the family has dim={dim}")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"quadrature must be a QuadratureRule, a spec string or None; got {type(spec).__name__}")
    name, _, size = spec.partition(":")
    if name not in RULES:
        raise ValueError(f"unknown quadrature rule {name!r}; expected one of {sorted(RULES)}")
    if not size:
        return RULES[name](dim)
    try:
        if name == "composite_gauss_legendre":
            panels, _, points = size.partition("x")
            return CompositeGaussLegendreRule(dim, int(panels), int(points) if points else 4)
        if name == "sobol":
            n, _, seed = size.partition(":")
            return SobolRule(dim, int(n), int(seed) if seed else 0)
        return RULES[name](dim, int(size))
    except ValueError as err:
        raise ValueError(f"cannot parse quadrature spec {spec!r}: {err}") from None
