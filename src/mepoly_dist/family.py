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

**Other dtypes and devices.**  ``node_operator``, ``node_features``, ``nodes`` and
``log_weights`` are in the family's current dtype and device.  A distribution asks for the
ones matching its own parameters, :meth:`MePolyFamily.node_operator_for` /
:meth:`~MePolyFamily.log_weights_for` / :meth:`~MePolyFamily.nodes_for` (the buffers themselves
for the current dtype and device, else copies of the float64 masters, built once and cached),
so a distribution built before ``family.double()`` or ``family.to(device)`` keeps working.

**Pickling.**  A pickled (or ``copy.deepcopy``-ed, or ``torch.save``-d) family holds only its
configuration (dimension, order, basis, quadrature spec, ``chunk_size``, ``node_operator``,
dtype, device: a few hundred bytes instead of the 10-25 MB of its tensors and sampler
caches); unpickling rebuilds everything else.  A quadrature rule that its spec does not
rebuild (a custom :class:`~mepoly_dist.quadrature.QuadratureRule`) is pickled as the rule.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import basis as _basis
from .node_features import DenseNodeFeatures, KroneckerNodeFeatures, NodeFeatures, kronecker_flops
from .normalizer import DEFAULT_CHUNK_SIZE, STEP_ELEMENTS
from .quadrature import RULES, GaussLegendreRule, QuadratureRule, make_rule

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

#: default :meth:`MePolyFamily.tolerance_for` with the default rule, by dtype: the largest estimated
#: error of a row's log-partition, in nats, that a distribution accepts without refining the rule
#: for that row (float64: the accuracy of the tests and evaluations; other dtypes, training: 1e-3
#: nats, where float32 rounding alone moves the log-partition by ~1e-5).  The estimate is
#: conservative (``normalizer.asymptotic_error``), so accepted rows are usually far more accurate.
DEFAULT_TOLERANCE = {torch.float64: 1e-6}
DEFAULT_TOLERANCE_OTHER = 1e-3
#: the default rule's screening rule (D <= 3): every row is first computed on Gauss-Legendre with
#: this fraction of the default's points per axis (at least ``order + 1``), and only the rows whose
#: error estimate exceeds the tolerance are computed again on the default rule.  A smooth row (most
#: of a policy's rows) then costs about a third of the default rule's work (48^2 + 36^2 nodes for
#: the error estimate against 80^2 + 60^2 in D = 2); a sharp one about 1.4x.
SCREENING_FRACTION = 0.6
SCREENING_MAX_DIM = 3
#: default ``max_nodes``: the refined rules of :meth:`MePolyFamily.refined_family` stop at this many nodes
MAX_REFINED_NODES = 1 << 17


def _check_rule_resolves_order(rule: QuadratureRule, order: int, basis: str) -> None:
    """Refuse a rule that cannot tell the features apart: with fewer than ``order + 1`` points on
    an axis (tensor rules) or fewer nodes than features (others), two different natural
    parameters give the same quadrature density, and the entropy and KL mean nothing (for
    example ``gauss_legendre:2`` at order 14 gives an entropy of 0.03 where the truth is -7.8)."""
    needed = order + 1
    if rule.points_per_axis is not None and rule.points_per_axis < needed:
        raise ValueError(
            f"quadrature {rule.spec!r} has {rule.points_per_axis} points per axis, too few for order {order}: "
            f"a tensor rule needs at least order + 1 = {needed} (the default rule follows the order)"
        )
    features = _basis.num_features(rule.dim, order)
    if rule.num_nodes < features:
        raise ValueError(f"quadrature {rule.spec!r} has {rule.num_nodes} nodes, fewer than the {features} features of order {order}")


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
        tolerance: the largest estimated error (nats) of a row's log-partition that a
            :class:`~mepoly_dist.MePoly` accepts from the rule; rows above it are recomputed on
            refined rules (:meth:`refined_family`), and rows still above it after the last one
            raise a :class:`~mepoly_dist.QuadratureWarning` (an error under ``validate_args``).
            Default (None): with the default rule :data:`DEFAULT_TOLERANCE` (1e-6 nats for float64
            parameters, 1e-3 otherwise);
            with a rule given by ``quadrature``, no tolerance (that rule's measure is used as is,
            its estimate still in ``MePoly.quadrature_error``); see :meth:`tolerance_for`.
        max_nodes: node budget per row: the refined rules stop below it, and the default rule
            takes fewer points per axis if it would exceed it (never fewer than ``order + 1``).

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
        tolerance: float | None = None,
        max_nodes: int = MAX_REFINED_NODES,
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
        if tolerance is not None and not float(tolerance) > 0:
            raise ValueError(f"tolerance must be a positive number of nats, got {tolerance!r}")
        self._tolerance = None if tolerance is None else float(tolerance)
        if int(max_nodes) < 1:
            raise ValueError(f"max_nodes must be a positive integer, got {max_nodes!r}")
        self.max_nodes = int(max_nodes)
        self._default_rule = quadrature is None or quadrature == "default"
        self.dim = dim
        self.order = order
        self.basis = basis
        self.chunk_size = int(chunk_size)
        self.quadrature: QuadratureRule = make_rule(quadrature, dim, order, max_nodes=self.max_nodes)
        _check_rule_resolves_order(self.quadrature, order, basis)
        self._node_operator_choice = node_operator
        dtype = torch.get_default_dtype() if dtype is None else dtype
        exponents = _basis.exponent_set(dim, order)
        # float64 masters on the CPU; the buffers below are views of them in the working dtype/device
        self._master = {
            "nodes": self.quadrature.nodes,
            "log_weights": self.quadrature.log_weights,
            "node_features": _basis.features(self.quadrature.nodes, exponents, order, basis),
        }
        self.embedded_rule = self.quadrature.embedded()
        kronecker = self._use_kronecker(node_operator)
        if kronecker:
            self._master["axis_table"] = _basis.univariate_table(self.quadrature.axis_nodes, order, basis)
        if self.embedded_rule is not None:
            # the error estimate's rule (quadrature.py): energies only, by the same kind of operator
            self._master["embedded_log_weights"] = self.embedded_rule.log_weights
            if kronecker and self.embedded_rule.axis_nodes is not None:
                self._master["embedded_axis_table"] = _basis.univariate_table(self.embedded_rule.axis_nodes, order, basis)
            else:
                self._master["embedded_node_features"] = _basis.features(self.embedded_rule.nodes, exponents, order, basis)
        self.register_buffer("exponents", exponents, persistent=False)
        for name, value in self._master.items():
            self.register_buffer(name, value.to(dtype), persistent=False)
        # (dtype, device) -> tensors and operator for a dtype/device other than the current one
        self._served: dict[tuple[torch.dtype, torch.device], dict] = {}
        self.node_operator: NodeFeatures = self._build_operator()
        self._sampler_cache = {}
        self._refined: dict[int, "MePolyFamily | None"] = {}
        self._screening: list = []  # [family or None] once built

    def _use_kronecker(self, node_operator: str) -> bool:
        axis = self.quadrature.axis_nodes
        if node_operator == "kronecker" and axis is None:
            raise ValueError(f"node_operator='kronecker' needs a tensor-product rule, not {self.quadrature.spec!r}")
        if node_operator != "auto" or axis is None or not 2 <= self.dim <= KRONECKER_MAX_DIM:
            return node_operator == "kronecker"
        dense = self.quadrature.num_nodes * _basis.num_features(self.dim, self.order)
        return kronecker_flops(len(axis), self.order + 1, self.dim) <= KRONECKER_FLOP_RATIO * dense

    def _build_operator(self, dtype=None, device=None, prefix: str = "") -> NodeFeatures:
        """The node operator on the tensors for ``dtype`` and ``device`` (default: current), of
        the rule (``prefix=""``) or of its embedded rule (``prefix="embedded_"``)."""
        if prefix + "axis_table" in self._master:
            table = self._tensor_for(prefix + "axis_table", dtype, device)
            return KroneckerNodeFeatures(table, self._exponents_on(table.device))
        return DenseNodeFeatures(self._tensor_for(prefix + "node_features", dtype, device))

    # -- per (dtype, device) --------------------------------------------------------------
    def _resolve(self, dtype, device) -> tuple[torch.dtype, torch.device]:
        dtype = self.dtype if dtype is None else dtype
        device = self.device if device is None else torch.device(device)
        if device.type != "cpu" and device.index is None:  # "cuda" -> the current "cuda:N"
            device = torch.empty(0, device=device).device
        return dtype, device

    def _is_current(self, dtype, device) -> bool:
        return dtype == self.dtype and device == self.device

    def _tensor_for(self, name: str, dtype=None, device=None) -> Tensor:
        """Master tensor ``name`` in ``dtype`` on ``device``: the buffer for the current dtype
        and device, else a copy of the float64 master (cached)."""
        dtype, device = self._resolve(dtype, device)
        if self._is_current(dtype, device):
            return getattr(self, name)
        served = self._served.setdefault((dtype, device), {})
        if name not in served:
            served[name] = self._master[name].to(device=device, dtype=dtype)
        return served[name]

    def _exponents_on(self, device: torch.device) -> Tensor:
        if device == self.exponents.device:
            return self.exponents
        served = self._served.setdefault((self.exponents.dtype, device), {})
        if "exponents" not in served:
            served["exponents"] = self.exponents.to(device)
        return served["exponents"]

    def node_operator_for(self, dtype=None, device=None) -> NodeFeatures:
        """:attr:`node_operator` for natural parameters of ``dtype`` on ``device`` (default:
        the family's): the family's own operator, or one on cached copies of the float64 masters.
        Distributions use this, so they keep working after the family moves (``.double()``)."""
        dtype, device = self._resolve(dtype, device)
        if self._is_current(dtype, device):
            return self.node_operator
        served = self._served.setdefault((dtype, device), {})
        if "node_operator" not in served:
            served["node_operator"] = self._build_operator(dtype, device)
        return served["node_operator"]

    def log_weights_for(self, dtype=None, device=None) -> Tensor:
        """:attr:`log_weights` in ``dtype`` on ``device`` (see :meth:`node_operator_for`)."""
        return self._tensor_for("log_weights", dtype, device)

    def tolerance_for(self, dtype=None) -> float:
        """The tolerance (nats) for parameters of ``dtype`` (default: the family's): the one given
        at construction, else :data:`DEFAULT_TOLERANCE` of the dtype with the default rule, and none
        (inf: the rule's own quadrature measure, as asked for) with a rule the user chose."""
        if self._tolerance is not None:
            return self._tolerance
        if not self._default_rule:
            return float("inf")
        return DEFAULT_TOLERANCE.get(self.dtype if dtype is None else dtype, DEFAULT_TOLERANCE_OTHER)

    def embedded_for(self, dtype=None, device=None):
        """``(operator, log_weights, exponent)`` of the rule's embedded rule in ``dtype`` on
        ``device`` (the error estimate of :mod:`mepoly_dist.quadrature`), or None without one."""
        if self.embedded_rule is None:
            return None
        dtype, device = self._resolve(dtype, device)
        served = self._served.setdefault((dtype, device), {})
        if "embedded_operator" not in served:
            served["embedded_operator"] = self._build_operator(dtype, device, prefix="embedded_")
        return served["embedded_operator"], self._tensor_for("embedded_log_weights", dtype, device), self.quadrature.embedded_exponent

    def refined_family(self, level: int) -> "MePolyFamily | None":
        """This family with its rule refined ``level`` times (:meth:`QuadratureRule.refined`,
        about twice the points per axis each time), on the same dtype and device; None once the
        rule would exceed ``max_nodes`` nodes or cannot be refined.  Cached."""
        if level not in self._refined:
            rule = self.quadrature
            try:
                for _ in range(level):
                    rule = rule.refined()
            except NotImplementedError:
                rule = None
            fits = rule is not None and rule.num_nodes <= self.max_nodes
            self._refined[level] = (
                MePolyFamily(self.dim, self.order, self.basis, rule, self.chunk_size, self.dtype, self._node_operator_choice,
                             self._tolerance, self.max_nodes).to(self.device) if fits else None
            )
        return self._refined[level]

    def screening_family(self) -> "MePolyFamily | None":
        """The coarser family rows are screened on first (:data:`SCREENING_FRACTION`), on the same
        dtype and device; None unless this family uses the default Gauss-Legendre rule in
        ``D <= SCREENING_MAX_DIM`` with a coarser rule that still resolves the order.  Cached."""
        if not self._screening:
            points = self.quadrature.points_per_axis
            family = None
            if self._default_rule and isinstance(self.quadrature, GaussLegendreRule) and self.dim <= SCREENING_MAX_DIM:
                coarse = max(self.order + 1, math.ceil(SCREENING_FRACTION * points))
                if coarse < points:
                    family = MePolyFamily(self.dim, self.order, self.basis, GaussLegendreRule(self.dim, coarse), self.chunk_size,
                                          self.dtype, self._node_operator_choice, self._tolerance, self.max_nodes).to(self.device)
            self._screening.append(family)
        return self._screening[0]

    def nodes_for(self, dtype=None, device=None) -> Tensor:
        """:attr:`nodes` in ``dtype`` on ``device`` (see :meth:`node_operator_for`)."""
        return self._tensor_for("nodes", dtype, device)

    def node_features_for(self, dtype=None, device=None) -> Tensor:
        """:attr:`node_features` in ``dtype`` on ``device`` (see :meth:`node_operator_for`)."""
        return self._tensor_for("node_features", dtype, device)

    # -- nn.Module plumbing -------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        # rebuild the float buffers from the float64 masters at the new device/dtype
        for name, master in self._master.items():
            current = getattr(self, name)
            setattr(self, name, master.to(device=current.device, dtype=current.dtype))
        self.node_operator = self._build_operator()
        self._sampler_cache = {}
        self._refined = {}
        self._screening = []
        # the buffers now serve the new dtype/device; copies for the others stay valid
        self._served.pop((self.dtype, self.device), None)
        self._served.pop((self.exponents.dtype, self.exponents.device), None)
        return self

    # -- pickling: the configuration only -------------------------------------------------
    def _init_args(self) -> dict:
        """Arguments of ``__init__`` that rebuild this family (its dtype and device aside)."""
        rule = self.quadrature
        rebuilt_by_spec = type(rule) is RULES.get(rule.name)
        return {
            "dim": self.dim,
            "order": self.order,
            "basis": self.basis,
            "quadrature": None if self._default_rule else rule.spec if rebuilt_by_spec else rule,
            "chunk_size": self.chunk_size,
            "node_operator": self._node_operator_choice,
            "tolerance": self._tolerance,
            "max_nodes": self.max_nodes,
        }

    def __getstate__(self) -> dict:
        # the derived tensors, the operator and the caches (sampler lattices, other dtypes) are
        # rebuilt by __setstate__; module hooks are not kept (a family has no forward)
        return {"init": self._init_args(), "dtype": self.dtype, "device": str(self.device), "training": self.training}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state["init"], dtype=state["dtype"])
        if torch.device(state["device"]) != self.device:
            self.to(state["device"])
        self.train(state["training"])

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

        ``chunk`` is ``chunk_size``, or more for small batches (up to ``STEP_ELEMENTS // batch``: a
        batch of one does not pay a Python step per ``chunk_size`` nodes); ``rows`` is all rows while
        ``rows x block`` stays within ``STEP_ELEMENTS``, fewer for large batches (``block`` is
        ``chunk`` as the operator rounds it, whole slabs for Kronecker), so the temporaries of a
        step stay about :data:`~mepoly_dist.normalizer.STEP_ELEMENTS` elements."""
        batch_size = max(int(batch_size), 1)
        chunk = max(self.chunk_size, STEP_ELEMENTS // batch_size)
        rows = max(1, STEP_ELEMENTS // self.node_operator.block_size(chunk))
        steps = -(-batch_size // rows)
        return -(-batch_size // steps), chunk  # the same number of rows in every step

    def _check_points(self, x: Tensor) -> None:
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"expected points of shape (..., {self.dim}), got {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        r""":math:`\phi(x)` for ``x`` of shape ``(..., dim)``; returns ``(..., num_params)``."""
        self._check_points(x)
        return _basis.features(x, self._exponents_on(x.device), self.order, self.basis)

    def features_and_jacobian(self, x: Tensor):
        r""":math:`\phi(x)` ``(..., F)`` and :math:`\partial\phi/\partial x` ``(..., dim, F)``."""
        self._check_points(x)
        return _basis.features_and_jacobian(x, self._exponents_on(x.device), self.order, self.basis)

    def features_jacobian_hessian(self, x: Tensor):
        r""":math:`\phi(x)`, :math:`\partial\phi/\partial x` ``(..., dim, F)`` and
        :math:`\partial^2\phi/\partial x^2` ``(..., dim, dim, F)``."""
        self._check_points(x)
        return _basis.features_jacobian_hessian(x, self._exponents_on(x.device), self.order, self.basis)

    def distribution(self, natural_params: Tensor, validate_args=None):
        """Shorthand for ``MePoly(natural_params, self, validate_args)``."""
        from .distribution import MePoly

        return MePoly(natural_params, self, validate_args=validate_args)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, order={self.order}, basis={self.basis!r}, quadrature={self.quadrature.spec!r}, "
            f"num_params={self.num_params}, node_operator={self.node_operator.kind!r}"
        )
