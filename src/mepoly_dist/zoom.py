r"""Box rules: the family's Gauss-Legendre rule mapped onto a box around each row's mass.

A fixed tensor rule resolves a density only while its peaks are wider than the node spacing.  A
sharp MePoly density (a large :math:`|\lambda|`: a confident policy) puts almost all of its mass
in a small region, typically one peak near a face or corner of the cube; the integrand
:math:`e^{\lambda^\top\phi(x)}` is still analytic there, so Gauss-Legendre on a box *around that
region* is as accurate as the rule is on a smooth density on the whole cube.  The box of each row
is found by zooming (no gradient; the box is a constant for autograd, like any node placement,
so the streamed backward passes and second derivatives of :mod:`mepoly_dist.normalizer` are
unchanged):

1. Start from the cube.  Evaluate the row's energies on its current box rule (the family's
   ``n``-point rule mapped onto the box, per axis) and keep the nodes whose log-mass
   :math:`\log w_i + E_i` is within :data:`SIGNIFICANT_LOG_MASS` nats of the largest.
2. On every axis the new box spans the kept nodes and reaches out to the next node that was not
   kept (or the old box's edge): every node left outside lies in a slab of nodes that all hold
   less than :math:`e^{-40}` of the largest node's mass, so the mass left out is below
   :math:`N e^{-40} \approx 10^{-14}` relative, as far as the previous rule resolves the density.
3. Repeat :data:`ZOOM_STEPS` times: a peak that spans a few nodes of one rule spans the whole
   next one.

The error estimate is the same as for the family's rule (:mod:`mepoly_dist.quadrature`): the gap
to the embedded rule (``ceil(3n/4)`` points) on the same box.  A density whose mass is spread
(several far-apart modes, a ridge) keeps a large box, and the zoom gains nothing; MePoly then
refines the rule on the whole cube instead (:meth:`~mepoly_dist.MePolyFamily.refined_family`).

Limits: one box per row, so a density with several sharp modes far apart (in D = 3..5, random
rows at c >= 3 often peak at several corners) keeps a large box and is only refined; and the box
is found from node values, so a peak that no node of the cube's rule comes near (within ~40 nats)
is missed here as it is by the rule itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import basis as _basis
from .node_features import RowKroneckerNodeFeatures

__all__ = ["BoxRule", "zoom_boxes", "SIGNIFICANT_LOG_MASS", "ZOOM_STEPS"]

#: nodes holding less than exp(-SIGNIFICANT_LOG_MASS) of the largest node's mass are left out
SIGNIFICANT_LOG_MASS = 40.0
#: zoom steps from the cube
ZOOM_STEPS = 4


class BoxRule:
    """The ``points``-point Gauss-Legendre rule tensorised on per-row boxes ``[lo, hi]`` ``(B, D)``:
    axis nodes and log-weights ``(B, D, n)`` and the sum-factorized node operator."""

    def __init__(self, lo: Tensor, hi: Tensor, points: int, exponents: Tensor, order: int, basis: str):
        x, w = np.polynomial.legendre.leggauss(points)
        x = torch.as_tensor(x, dtype=lo.dtype, device=lo.device)
        logw = torch.as_tensor(np.log(w), dtype=lo.dtype, device=lo.device)
        half = ((hi - lo) / 2).clamp_min(torch.finfo(lo.dtype).tiny)
        self.lo, self.hi = lo, hi
        self.axis_nodes = ((hi + lo) / 2)[..., None] + half[..., None] * x  # (B, D, n)
        self.axis_log_weights = logw + torch.log(half)[..., None]
        # K >= 3 columns: P_1 and P_2 give the mean and variance (MePoly.mean / variance)
        tables = _basis.univariate_table(self.axis_nodes, max(order, 2), basis)
        self.operator = RowKroneckerNodeFeatures(tables, exponents)

    def log_weights(self) -> Tensor:
        """``(B, n^D)`` log-weights, in the operator's row-major node order."""
        B, D, _ = self.axis_log_weights.shape
        out = self.axis_log_weights[:, 0]
        for d in range(1, D):
            out = (out[:, :, None] + self.axis_log_weights[:, d, None, :]).reshape(B, -1)
        return out

    def log_masses(self, natural_params: Tensor) -> Tensor:
        op = self.operator
        return op.energies(op.prepare(natural_params), slice(0, op.num_nodes)) + self.log_weights()


def _significant_box(rule: BoxRule, log_masses: Tensor) -> tuple[Tensor, Tensor]:
    """The box of step 2 (module docstring) from the log-masses ``(B, n^D)`` on ``rule``."""
    B, D, n = rule.axis_nodes.shape
    keep = (log_masses >= log_masses.amax(-1, keepdim=True) - SIGNIFICANT_LOG_MASS).view(B, *([n] * D))
    kept = torch.stack([keep.any(dim=[1 + e for e in range(D) if e != d]) if D > 1 else keep for d in range(D)], 1)  # (B, D, n)
    index = torch.arange(n, device=keep.device).expand(B, D, n)
    first = torch.where(kept, index, n).amin(-1, keepdim=True)
    last = torch.where(kept, index, -1).amax(-1, keepdim=True)
    ends = torch.cat([rule.lo[..., None], rule.axis_nodes, rule.hi[..., None]], -1)  # node j at j + 1
    return ends.gather(-1, first).squeeze(-1), ends.gather(-1, last + 2).squeeze(-1)


def zoom_boxes(natural_params: Tensor, points: int, exponents: Tensor, order: int, basis: str, steps: int = ZOOM_STEPS) -> tuple[Tensor, Tensor]:
    """Boxes ``(lo, hi)``, each ``(B, D)``, around the mass of every row of ``natural_params`` ``(B, F)``."""
    B, D = natural_params.shape[0], exponents.shape[1]
    lo = torch.full((B, D), -1.0, dtype=natural_params.dtype, device=natural_params.device)
    hi = -lo
    with torch.no_grad():
        for _ in range(steps):
            rule = BoxRule(lo, hi, points, exponents, order, basis)
            lo, hi = _significant_box(rule, rule.log_masses(natural_params.detach()))
    return lo, hi
