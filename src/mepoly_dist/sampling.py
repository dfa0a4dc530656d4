r"""Continuous sampling from MePoly by rejection from an adaptive piecewise log-linear envelope.

The paper's implementation draws a quadrature node from the discrete masses (appendix,
"Sampling draws a grid point by inverse-CDF"), so every action lies on the grid.  Here
samples are continuous and follow the density itself.

1. **Cells.**  The cube is split into :math:`G^D` boxes whose edges sit at the Chebyshev points
   :math:`-\cos(\pi i / G)`: a polynomial of degree :math:`n` varies on a scale :math:`\sim 1/n^2`
   near the ends of :math:`[-1, 1]` and :math:`\sim 1/n` in the middle, and so do these cells.
   :math:`G` grows with the order, :math:`G \approx 2.4\,n` (33 for order 14), within the
   lattice budget of the dimension (:func:`sampler_cells_per_dim`).  The start is scale-aware:
   every row is first cut into half as many cells per axis (:data:`COARSE_FRACTION`), and only the
   rows with more than :data:`ROUGH_SHARE` of those cells loose (step 3) start again from the full
   lattice, so a smooth row (a projected paper target) pays for a quarter of the cells.
2. **Envelope.**  In a cell with centre :math:`c` and half-widths :math:`k` the energy
   :math:`E(x) = \lambda^\top\phi(x)` is bounded by

   .. math:: E(x) \le E(c) + g^\top (x - c) + B, \qquad g = \nabla E(c),

   where :math:`B` bounds the residual :math:`R(x) = E(x) - E(c) - g^\top(x - c)`.  The residual is
   evaluated on the stencil :math:`x = c + k \odot s` with :math:`s` the centre, the axis points
   :math:`\pm e_d` and the face diagonals :math:`\pm e_d \pm e_e` (:math:`2D^2 + 1` points).  Its finite-difference Hessian in stencil units,
   :math:`\tilde H_{dd} = R(e_d) + R(-e_d)`,
   :math:`\tilde H_{de} = \tfrac14[R(e_d{+}e_e) - R(e_d{-}e_e) - R(-e_d{+}e_e) + R(-e_d{-}e_e)]`,
   bounds the quadratic model on the cell,
   :math:`\max_{|s_d| \le 1} \tfrac12 s^\top\tilde H s \le \tfrac12\big(\sum_d \tilde H_{dd}^+ + \sum_{d\ne e}|\tilde H_{de}|\big)`
   (exact for a quadratic residual, which is what the residual becomes as cells shrink), and the
   largest misfit of that model on the stencil measures odd and higher-order terms.  :math:`B` is
   ``safety`` times their sum, and at least the largest stencil residual.
3. **Refinement.**  A cell whose residual spread on the stencil (the bound minus the lowest stencil
   residual) exceeds ``max_spread`` (its acceptance rate could be below about :math:`e^{-3}`) and whose envelope mass is within :math:`e^{-35}` of the largest lower estimate of a cell mass
   in its row (envelope mass times :math:`e^{-\text{spread}}`) is halved along the axis that carries
   the most curvature (largest row sum of :math:`|\tilde H|`), recursively: a k-d tree, so a split
   costs two children rather than :math:`2^D`.  This is what keeps sharply peaked densities
   (:math:`|\lambda| \sim 10^4`) cheap; cells left unrefined for lack of mass hold less than
   :math:`\approx 10^{-12}` of it and are still sampled exactly through their envelopes.
4. **Proposal.**  The envelope mass of a cell is closed-form,
   :math:`M = e^{E(c) + B}\prod_d 2k_d\,\operatorname{sinhc}(g_d k_d)`.  Draw a cell with probability
   :math:`\propto M`, then each coordinate from its truncated exponential :math:`\propto e^{g_d t}`
   (exact inverse CDF), and **accept** with probability :math:`\exp(R(x) - B)`.

**Which guarantee holds.**  The bound :math:`B` comes from finite differences on the stencil with
a safety factor, not from a proof, so the sampler also *checks* it: every proposal's residual is
computed exactly (it is needed for the acceptance test anyway), and a proposal above its cell's
bound (beyond the energies' rounding error) is a detected violation.  It is *corrected*, not
only reported: the cell's bound is raised by twice the largest excess seen, and every
sample of that row is drawn again from the corrected envelope.  So each returned sample comes
from a rejection run in which no proposal exceeded the envelope; the samples are exact draws from
:math:`p_\lambda` wherever the final envelope bounds the density, and a violation at a point no
proposal visited is the one thing that cannot be seen (it would under-weight a region the
proposals never reach).  ``sample_mepoly(..., return_stats=True)`` and
:meth:`mepoly_dist.MePoly.sample_with_stats` return the per-call counts (:class:`SamplingStats`).

**Cost** (one core, ``benchmarks/core_speed.py``, 1024 distinct rows): a 2-D order-14 head at the
paper's projected targets about 50 ms (about 4.5x its normalizer pass), with :math:`\lambda` = ``3 * randn`` about
0.9 s; order 8 20-50 ms and 0.18 s.  Eight rows with :math:`|\lambda| \sim 10^4` take about
0.03 s, and 10^6 draws from one sharply peaked 2-D density about 10 s.  The first level of cells is
a tensor grid, so the cost grows with D: a 4-D order-4 head about 2.6 s per 1024 rows, a 5-D order-3
head about 2 s per 64 rows, 6-D order 3 and 8-D order 2 about 25-40 s per 64 rows (memory stays
bounded).  For D >= 6 policies, products of low-dimensional MePoly blocks sample far more cheaply.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from . import basis as _basis
from .node_features import KroneckerNodeFeatures, tensor_grid_energies
from .normalizer import duplicate_rows

# ``lam`` below is lambda, the natural parameters (``natural_params`` of sample_mepoly), shape (B, F)

__all__ = ["default_cells_per_dim", "sampler_cells_per_dim", "lattice_for", "sample_mepoly", "SamplingStats"]

#: target number of lattice points ((2G+1)^D) for the first level of cells (33 Chebyshev cells
#: per axis resolve a 2-D order-14 density; peaked densities and higher D rely on refinement)
LATTICE_BUDGET = {1: 1025, 3: 20000}
LATTICE_BUDGET_DEFAULT = 4500
#: rejection rounds: at most this many proposals per pending sample in one round; rounds with
#: fewer than SMALL_ROUND pending samples aim at SMALL_ROUND_ACCEPTANCES expected acceptances each
MAX_COPIES = 16
SMALL_ROUND = 256
SMALL_ROUND_ACCEPTANCES = 3.0
#: cells whose envelope mass is this far (in log) below their row's largest are not refined
NEGLIGIBLE_LOG_MASS = 35.0


#: first-level cells per axis per unit of polynomial order (33 cells resolve a 2-D order-14 density)
CELLS_PER_ORDER = 33 / 14
#: fewest first-level cells per axis the sampler starts from (when the lattice budget allows)
MIN_SAMPLER_CELLS = 8
#: the scale-aware start tries this fraction of the first-level cells per axis first
COARSE_FRACTION = 0.5
#: rows with more than this share of loose coarse cells start again from the full lattice
ROUGH_SHARE = 0.05


def _cells_within(budget: int, dim: int) -> int:
    """Largest G with (2G+1)^dim lattice points within ``budget``."""
    return max(1, int((budget ** (1.0 / dim) + 1e-9 - 1) // 2))


def default_cells_per_dim(dim: int) -> int:
    """Largest G with (2G+1)^dim within the lattice budget of the dimension."""
    return _cells_within(LATTICE_BUDGET.get(dim, LATTICE_BUDGET_DEFAULT), dim)


#: the sampler's own lattice budget in D >= 4, where a k-d split costs far more than a lattice cell
#: (2D^2 + 1 stencil points of dense features each): 8 cells per axis at D = 4 and 7 at D = 5
SAMPLER_LATTICE_BUDGET = {4: 17**4, 5: 15**5}


def sampler_cells_per_dim(dim: int, order: int) -> int:
    """First-level cells per axis for sampling: ``ceil(CELLS_PER_ORDER * order)`` (a degree-n
    polynomial varies on a scale ~1/n), at least :data:`MIN_SAMPLER_CELLS`, at most the lattice
    budget's (:data:`SAMPLER_LATTICE_BUDGET` where it names the dimension, else
    :func:`default_cells_per_dim`).  Lower orders start from fewer cells: a 2-D order-8 head from
    19 per axis instead of 33, about 3x fewer lattice points; refinement still splits any cell
    whose envelope is loose."""
    wanted = max(MIN_SAMPLER_CELLS, math.ceil(CELLS_PER_ORDER * order - 1e-9))
    budget = SAMPLER_LATTICE_BUDGET.get(dim, LATTICE_BUDGET.get(dim, LATTICE_BUDGET_DEFAULT))
    return min(_cells_within(budget, dim), wanted)


class _Stencil:
    """The points of a cell where the residual is evaluated, in stencil units s (x = c + k * s):
    the centre, the 2D axis points +-e_d and the 4 C(D, 2) face diagonals +-e_d +-e_e.  These
    determine the quadratic model of the residual (2D^2 + 1 points; all 3^D stencil points only
    for D <= 2), which keeps the cost polynomial in D."""

    def __init__(self, dim: int, dtype, device):
        unit = lambda entries: tuple(entries.get(k, 0) for k in range(dim))
        offsets = [unit({})]
        self.axis = []
        for d in range(dim):
            self.axis.append((len(offsets), len(offsets) + 1))
            offsets += [unit({d: 1}), unit({d: -1})]
        self.pairs = []
        for d in range(dim):
            for e in range(d + 1, dim):
                self.pairs.append((d, e, list(range(len(offsets), len(offsets) + 4))))
                offsets += [unit({d: a, e: b}) for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
        self.centre = 0
        position = [sum((o[d] + 1) * 3 ** (dim - 1 - d) for d in range(dim)) for o in offsets]
        if len(offsets) == 3**dim:
            # D <= 2: the stencil is the whole 3^D window; list it in window order, so that the
            # lattice's windows are the stencils as they are (no gather)
            rank = {p: i for i, p in enumerate(position)}  # point i of the list sits at window slot position[i]
            self.centre = position[0]
            self.axis = [(position[p], position[m]) for p, m in self.axis]
            self.pairs = [(d, e, [position[i] for i in points]) for d, e, points in self.pairs]
            offsets = [offsets[rank[slot]] for slot in range(len(offsets))]
            position = list(range(len(offsets)))
        self.offsets = torch.tensor(offsets, dtype=dtype, device=device)  # (S, D)
        #: position of each point in the full 3^D window (product order, first axis slowest)
        self.full_position = torch.tensor(position, device=device)
        # the finite-difference Hessian as two linear maps of the residual on the stencil:
        # H_dd = R(e_d) + R(-e_d) and H_de = (R(e_d+e_e) - R(e_d-e_e) - R(-e_d+e_e) + R(-e_d-e_e)) / 4
        S, P = len(offsets), len(self.pairs)
        self.to_diag = torch.zeros(S, dim, dtype=dtype, device=device)
        for d, (p, m) in enumerate(self.axis):
            self.to_diag[p, d] = self.to_diag[m, d] = 1.0
        self.to_cross = torch.zeros(S, P, dtype=dtype, device=device)
        self.incidence = torch.zeros(P, dim, dtype=dtype, device=device)  # pair -> its two axes
        for q, (d, e, points) in enumerate(self.pairs):
            self.to_cross[points, q] = torch.tensor([0.25, -0.25, -0.25, 0.25], dtype=dtype, device=device)
            self.incidence[q, d] = self.incidence[q, e] = 1.0
        # the quadratic model 1/2 s^T H s on the stencil: 1/2 H_dd s_d^2 + H_de s_d s_e
        off = self.offsets
        self.diag_model = 0.5 * (off * off).t()  # (D, S)
        self.cross_model = torch.stack([off[:, d] * off[:, e] for d, e, _ in self.pairs] or [off.new_zeros(0, S)]).reshape(P, S)

    def bound(self, stencil_energy: Tensor, scaled_grad: Tensor, safety: float):
        r"""Residual bound, residual spread (bound minus the lowest stencil residual) and the axis
        to split (most curvature) from energies on the stencil (..., S) and k * grad (..., D).

        With :math:`\tilde H` the finite-difference Hessian, the quadratic term is bounded by
        :math:`\tfrac12(\sum_d \tilde H_{dd}^+ + 2\sum_{d<e}|\tilde H_{de}|)`; the split axis
        has the largest row sum of :math:`|\tilde H|`.  All linear maps are matrix products, so
        the cost is a few passes over the stencil values whatever D is."""
        residual = stencil_energy - stencil_energy[..., self.centre, None] - scaled_grad @ self.offsets.t()
        diag = residual @ self.to_diag  # (..., D)
        cross = residual @ self.to_cross  # (..., P)
        quad = 0.5 * diag.clamp_min(0).sum(-1) + cross.abs().sum(-1)
        model = diag @ self.diag_model + cross @ self.cross_model
        misfit = (residual - model).abs().amax(-1)
        bound = torch.maximum(safety * (quad + misfit), residual.amax(-1)).clamp_min(0.0)
        curvature = diag.abs() + cross.abs() @ self.incidence
        return bound, bound - residual.amin(-1), curvature.argmax(-1)


def _log_mass(e_c: Tensor, scaled_grad: Tensor, half: Tensor, bound: Tensor) -> Tensor:
    """log of the envelope mass exp(E(c) + B) prod_d 2 k_d sinhc(g_d k_d)."""
    z = scaled_grad.abs()
    log_sinhc = torch.where(z < 1e-4, z * z / 6, z + torch.log1p(-torch.exp(-2 * z)) - torch.log(2 * z.clamp_min(1e-4)))
    return e_c + bound + log_sinhc.sum(-1) + torch.log(2 * half).sum(-1)


class _Lattice:
    """The first level of cells on the cube: a tensor grid of (2G+1)^D lattice points (cell
    edges and midpoints per axis).  Energies on the lattice and gradients at the cell centres
    are sum-factorized mode products with 1-D tables (:func:`~mepoly_dist.node_features.tensor_grid_energies`),
    never a ``(points, F)`` feature matrix."""

    def __init__(self, family, cells: int):
        dim, G = family.dim, cells
        dtype, device = family.dtype, family.device
        edges = -torch.cos(torch.pi * torch.arange(G + 1, dtype=torch.float64) / G)
        edges[0], edges[-1] = -1.0, 1.0
        mids = (edges[1:] + edges[:-1]) / 2
        line = torch.cat([torch.stack([edges[:-1], mids], -1).reshape(-1), edges[-1:]])  # edge, mid, ..., edge
        points = torch.cartesian_prod(*([line] * dim)).reshape(-1, dim)
        strides = torch.tensor([(2 * G + 1) ** (dim - 1 - d) for d in range(dim)])
        cell_index = torch.cartesian_prod(*([torch.arange(G)] * dim)).reshape(-1, dim)  # (C, D)
        self.stencil = _Stencil(dim, dtype, device)
        self.dim, self.cells, self._family = dim, G, family
        offsets = self.stencil.offsets.long().cpu()
        self.stencil_index = ((2 * cell_index[:, None, :] + 1 + offsets[None]) @ strides).to(device)  # (C, S)
        self.centers = torch.cartesian_prod(*([mids] * dim)).reshape(-1, dim).to(dtype=dtype, device=device)  # (C, D)
        self.half = ((edges[1:] - edges[:-1]) / 2)[cell_index].to(dtype=dtype, device=device)  # (C, D)
        self.points = points  # (L, D) float64, on the CPU
        exponents = family.exponents.to(device)
        table = lambda x, derivative=False: _basis.univariate_table(x, family.order, family.basis, derivative)
        self.kronecker = KroneckerNodeFeatures(table(line).to(dtype=dtype, device=device), exponents)
        mid_values, mid_slopes = table(mids, True)
        self.mid_values_t = mid_values.t().contiguous().to(dtype=dtype, device=device)  # (K, G)
        self.mid_slopes_t = mid_slopes.t().contiguous().to(dtype=dtype, device=device)

    @property
    def features(self) -> Tensor:
        """``(L, F)`` features of the lattice points (the mode's search in D >= 4; built once)."""
        if not hasattr(self, "_features"):
            self._features = self._family.features(self.points).to(dtype=self.centers.dtype, device=self.centers.device)
        return self._features

    def energies_and_gradients(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        """Energies ``(b, L)`` on the lattice and gradients ``(b, C, D)`` at the cell centres."""
        prepared = self.kronecker.prepare(lam)
        energy = self.kronecker.energies(prepared, slice(0, self.kronecker.num_nodes))
        grad = torch.stack(
            [
                tensor_grid_energies(prepared, [self.mid_slopes_t if e == d else self.mid_values_t for e in range(self.dim)])
                for d in range(self.dim)
            ],
            -1,
        )
        return energy, grad

    def stencils_of(self, energy: Tensor) -> Tensor:
        """Regroup lattice values ``(b, L)`` into each cell's stencil ``(b, C, S)``: strided
        windows (``unfold``, no index arithmetic) in low dimension, a gather otherwise."""
        if self.dim > 3:
            return energy[:, self.stencil_index]
        n = 2 * self.cells + 1
        windows = energy.reshape(-1, *([n] * self.dim))
        for d in range(self.dim):
            windows = windows.unfold(1 + d, 3, 2)
        windows = windows.reshape(energy.shape[0], self.cells**self.dim, 3**self.dim)
        if self.stencil.offsets.shape[0] == 3**self.dim:  # D <= 2: the stencil is the whole window
            return windows
        return windows.index_select(-1, self.stencil.full_position)


def lattice_for(family, cells: int) -> _Lattice:
    """The first-level cells of a family (cached on the family per device and dtype); the mode
    search reuses its points, which include the faces of the cube."""
    key = (cells, family.dtype, str(family.device))
    if key not in family._sampler_cache:
        family._sampler_cache[key] = _Lattice(family, cells)
    return family._sampler_cache[key]


class SamplingStats(NamedTuple):
    """What one call of :func:`sample_mepoly` did (``return_stats=True``)."""

    #: proposals drawn from the envelope, in all rounds
    proposals: int
    #: samples returned (``num_samples * rows``; rows that share parameters share their draws'
    #: proposals, so those are counted once)
    accepted: int
    #: proposals whose energy exceeded the envelope (each raised its cell's bound)
    violations: int
    #: rows whose samples were all drawn again after a violation
    restarted_rows: int
    #: cells of the final envelope, all rows together
    cells: int


class _Cells:
    """Flat arrays of leaf cells: row, centre, half-width, centre energy, gradient, residual bound,
    residual spread, axis to split, log envelope mass."""

    def __init__(self, row, center, half, e_c, grad, bound, spread, axis, log_mass):
        self.row, self.center, self.half, self.e_c, self.grad = row, center, half, e_c, grad
        self.bound, self.spread, self.axis, self.log_mass = bound, spread, axis, log_mass

    def select(self, which: Tensor) -> "_Cells":
        """The cells of a boolean mask or an index tensor (a mask becomes indices once, not once per field)."""
        index = which.nonzero().squeeze(-1) if which.dtype == torch.bool else which
        return _Cells(*(a.index_select(0, index) for a in self.fields()))

    def fields(self):
        return self.row, self.center, self.half, self.e_c, self.grad, self.bound, self.spread, self.axis, self.log_mass

    @staticmethod
    def cat(parts) -> "_Cells":
        return _Cells(*(torch.cat(f) for f in zip(*(p.fields() for p in parts))))


def _cells_from_stencil(row, center, half, stencil_energy, grad, stencil: _Stencil, safety: float) -> _Cells:
    """Envelope of cells from their stencil energies ``(K, S)`` and centre gradients ``(K, D)``."""
    scaled = grad * half
    bound, spread, axis = stencil.bound(stencil_energy, scaled, safety)
    e_c = stencil_energy[:, stencil.centre]
    return _Cells(row, center, half, e_c, grad, bound, spread, axis, _log_mass(e_c, scaled, half, bound))


def _first_level(lam: Tensor, lat: _Lattice, safety: float, batch_block: int, row_ids: Tensor | None = None) -> _Cells:
    """Envelopes of the lattice's cells for every row of ``lam``; their rows are ``row_ids``
    (default: ``0 .. len(lam) - 1``)."""
    parts = []
    C = lat.centers.shape[0]
    batch_block = max(1, min(batch_block, (1 << 23) // (C * lat.stencil.offsets.shape[0])))  # bound the (b, C, S) temporaries
    for start in range(0, lam.shape[0], batch_block):
        rows = lam[start : start + batch_block]
        energy, grad = lat.energies_and_gradients(rows)  # (b, L), (b, C, D)
        stencil_energy = lat.stencils_of(energy)  # (b, C, S)
        b = rows.shape[0]
        row = torch.arange(start, start + b, device=lam.device) if row_ids is None else row_ids[start : start + b]
        row = row.repeat_interleave(C)
        parts.append(
            _cells_from_stencil(
                row,
                lat.centers.repeat(b, 1),
                lat.half.repeat(b, 1),
                stencil_energy.reshape(b * C, -1),
                grad.reshape(b * C, -1),
                lat.stencil,
                safety,
            )
        )
    return _Cells.cat(parts)


def _cell_envelopes(lam: Tensor, row: Tensor, center: Tensor, half: Tensor, family, stencil: _Stencil, safety: float) -> _Cells:
    points = center[:, None] + stencil.offsets[None] * half[:, None]  # (K, S, D)
    stencil_energy = (family.features(points) * lam[row][:, None]).sum(-1)  # (K, S)
    grad = (family.features_and_jacobian(center)[1] * lam[row][:, None]).sum(-1)  # (K, D)
    return _cells_from_stencil(row, center, half, stencil_energy, grad, stencil, safety)


def _row_max(values: Tensor, row: Tensor, rows: int) -> Tensor:
    out = torch.full((rows,), -torch.inf, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, row, values, reduce="amax")


def _row_sum(values: Tensor, row: Tensor, rows: int) -> Tensor:
    return values.new_zeros(rows).index_add_(0, row, values)


def _loose(cells: _Cells, rows: int, max_spread: float) -> Tensor:
    """Cells to split: a residual spread above ``max_spread`` and not negligible.  A cell is
    negligible only if its envelope (an upper bound) is far below another cell's lower estimate
    (envelope minus residual spread) in its row."""
    lower = _row_max(cells.log_mass - cells.spread, cells.row, rows)
    significant = cells.log_mass >= lower[cells.row] - NEGLIGIBLE_LOG_MASS
    return (cells.spread > max_spread) & significant


def _refine(cells: _Cells, lam: Tensor, family, stencil: _Stencil, safety: float, max_spread: float, max_depth: int, max_cells: int, block: int) -> _Cells:
    B = lam.shape[0]
    for _ in range(max_depth):
        loose = _loose(cells, B, max_spread)
        n_split = int(loose.sum())
        if n_split == 0 or cells.row.numel() + n_split > max_cells:
            break
        parents = cells.select(loose)
        # two children per parent, halving the parent along its split axis
        shift = torch.zeros_like(parents.half).scatter_(1, parents.axis[:, None], 0.5) * parents.half
        half = (parents.half - shift).repeat(2, 1)
        center = torch.cat([parents.center - shift, parents.center + shift])
        row = parents.row.repeat(2)
        n_children = 2 * n_split
        # children per evaluation step: the stencil features are (step, S, F) elements
        step = max(1, min(block, (1 << 22) // (stencil.offsets.shape[0] * family.num_params)))
        children = [
            _cell_envelopes(lam, row[s : s + step], center[s : s + step], half[s : s + step], family, stencil, safety)
            for s in range(0, n_children, step)
        ]
        cells = _Cells.cat([cells.select(~loose)] + children)
    return cells


def _truncated_exponential(rate: Tensor, half: Tensor, u: Tensor) -> Tensor:
    """Inverse CDF of the density proportional to exp(rate * t) on [-half, half]."""
    a, width = rate.abs(), 2 * half
    ah = a * width
    # tau in [0, width] with density ~ exp(-a tau)
    tau = torch.where(ah < 1e-9, (1 - u) * width, -torch.log1p((1 - u) * torch.expm1(-ah)) / a.clamp_min(1e-300))
    tau = torch.minimum(tau.clamp_min(0.0), width)
    return torch.where(rate > 0, half - tau, tau - half)


def sample_mepoly(
    natural_params: Tensor,
    family,
    num_samples: int,
    cells: int | None = None,
    safety: float = 1.5,
    max_spread: float = 3.0,
    max_depth: int | None = None,
    max_cells: int = 1 << 21,
    max_rounds: int = 1000,
    block: int = 1 << 16,
    batch_block: int = 128,
    generator: torch.Generator | None = None,
    return_stats: bool = False,
):
    r"""Draw ``num_samples`` points for each row of ``natural_params`` :math:`\lambda` (``(B, F)``);
    returns ``(num_samples, B, D)``, and with ``return_stats=True`` also a :class:`SamplingStats` of the call.

    Rows with identical parameters (a contextual bandit's constant observation, repeated
    states in a rollout) share one envelope: the sampler draws ``num_samples * k`` points for
    a row repeated ``k`` times and deals them out, which is the same joint distribution
    (independent draws) at a fraction of the envelope cost.
    """
    lam = natural_params
    B, dim = lam.shape[0], family.dim
    out = torch.empty(num_samples, B, dim, dtype=lam.dtype, device=lam.device)
    if num_samples == 0 or B == 0:
        return (out, SamplingStats(0, 0, 0, 0, 0)) if return_stats else out
    grouped = duplicate_rows(lam, share=1.0)
    if grouped is not None and grouped[0].shape[0] < B:
        unique, inverse = grouped
        counts = torch.bincount(inverse, minlength=unique.shape[0])
        repeats = int(counts.max())
        if unique.shape[0] * repeats <= 2 * B:
            kwargs = dict(cells=cells, safety=safety, max_spread=max_spread, max_depth=max_depth, max_cells=max_cells,
                          max_rounds=max_rounds, block=block, batch_block=batch_block, generator=generator)
            draws, stats = sample_mepoly(unique, family, num_samples * repeats, return_stats=True, **kwargs)
            draws = draws.reshape(num_samples, repeats, unique.shape[0], dim)
            # the k-th duplicate of a row takes the k-th block of its unique row's draws
            order = torch.argsort(inverse, stable=True)
            group_start = torch.cumsum(counts, 0) - counts
            rank = torch.empty_like(inverse)
            rank[order] = torch.arange(B, device=lam.device) - group_start[inverse[order]]
            draws = draws[:, rank, inverse]
            return (draws, stats._replace(accepted=num_samples * B)) if return_stats else draws
    cells_per_dim = sampler_cells_per_dim(dim, family.order) if cells is None else int(cells)
    lat = lattice_for(family, cells_per_dim)
    coarse = max(1, min(cells_per_dim, math.ceil(cells_per_dim * COARSE_FRACTION))) if cells is None else cells_per_dim
    if coarse < cells_per_dim:
        # scale-aware start: every row on a lattice with half the cells per axis; the rows whose
        # envelopes are loose there (rough, or peaked on a scale the coarse cells miss) start
        # again from the full lattice, where a cell costs far less than a k-d split
        leaves = _first_level(lam, lattice_for(family, coarse), safety, batch_block)
        rough_share = _row_sum(_loose(leaves, B, max_spread).to(lam.dtype), leaves.row, B) / coarse**dim
        rough = rough_share > ROUGH_SHARE
        if bool(rough.any()):
            rows = rough.nonzero().squeeze(-1)
            leaves = _Cells.cat([leaves.select(~rough[leaves.row]), _first_level(lam[rows], lat, safety, batch_block, rows)])
    else:
        leaves = _first_level(lam, lat, safety, batch_block)
    max_depth = 16 * dim if max_depth is None else int(max_depth)  # each level halves one axis
    leaves = _refine(leaves, lam, family, lat.stencil, safety, max_spread, max_depth, max_cells, block)
    if bool((leaves.row[1:] < leaves.row[:-1]).any()):  # refinement appended children: group by row
        leaves = leaves.select(torch.argsort(leaves.row, stable=True))
    cdf = _flat_cdf(leaves, B)
    K = cdf.numel()
    pending = torch.arange(num_samples * B, device=lam.device)  # slot = i * B + b
    proposals = violations = restarts = 0
    acceptance = 0.5  # running estimate of the acceptance rate, for the copies per slot
    for _ in range(max_rounds):
        if pending.numel() == 0:
            break
        # each pending slot gets `copies` independent proposals and keeps the first accepted one
        # (accepted proposals are i.i.d. exact draws, so which one is kept does not matter):
        # enough for most slots to finish in one round when few are pending, where a round's
        # fixed cost dominates; about one expected acceptance per slot otherwise
        waiting = pending.numel()
        wanted = (SMALL_ROUND_ACCEPTANCES if waiting < SMALL_ROUND else 1.0) / max(acceptance, 1e-3)
        copies = int(min(MAX_COPIES, max(1, block // waiting), max(1, math.ceil(wanted))))
        keep, hit_cells, hit_excess = [], [], []
        for start in range(0, waiting, max(1, block // copies)):
            slots = pending[start : start + max(1, block // copies)]
            n_slots = slots.numel()
            proposal_slots = slots.repeat(copies)  # copy-major: copy c of slot i at c * n_slots + i
            b = proposal_slots % B
            u = torch.rand(b.shape, dtype=torch.float64, device=lam.device, generator=generator)
            j = torch.searchsorted(cdf, b.double() + u).clamp(max=K - 1)
            j = torch.where(leaves.row[j] < b, j + 1, j)  # u = 0 lands on the previous row's last cell
            rate, half, center = leaves.grad[j], leaves.half[j], leaves.center[j]
            t = _truncated_exponential(rate, half, torch.rand(rate.shape, dtype=lam.dtype, device=lam.device, generator=generator))
            x = (center + t).clamp(-1.0, 1.0)
            terms = family.features(x) * lam[b]
            excess = terms.sum(-1) - leaves.e_c[j] - (rate * (x - center)).sum(-1) - leaves.bound[j]
            # a violation must exceed the rounding error of the energies themselves
            rounding = 64 * torch.finfo(lam.dtype).eps * terms.abs().sum(-1)
            violated = excess > 1e-6 * (1 + leaves.bound[j]) + rounding
            hit_cells.append(j[violated])
            hit_excess.append(excess[violated])
            accept = (torch.log(torch.rand(excess.shape, dtype=lam.dtype, device=lam.device, generator=generator)) < excess).view(copies, n_slots)
            done = accept.any(0)
            first = accept.to(torch.int8).argmax(0)  # the first accepted copy of each slot
            chosen = x.view(copies, n_slots, dim)[first, torch.arange(n_slots, device=lam.device)]
            out.view(-1, dim)[slots[done]] = chosen[done]
            keep.append(slots[~done])
        proposals += waiting * copies
        pending = torch.cat(keep)
        # the share of slots still waiting is (1 - acceptance)^copies
        still = pending.numel() / waiting
        acceptance = 1.0 - still ** (1.0 / copies) if still > 0 else max(acceptance, 1.0 - 0.5 ** (1.0 / copies))
        hit, excess = torch.cat(hit_cells), torch.cat(hit_excess)
        if hit.numel():  # one host sync per round
            # correction: raise the bound of every violated cell by twice the largest excess seen
            # there, and draw every sample of its row again from the corrected envelope
            violations += hit.numel()
            raise_by = torch.zeros_like(leaves.bound).scatter_reduce(0, hit, 2 * excess, reduce="amax")
            leaves.bound = leaves.bound + raise_by
            leaves.log_mass = leaves.log_mass + raise_by
            cdf = _flat_cdf(leaves, B)
            rows = torch.zeros(B, dtype=torch.bool, device=lam.device)
            rows[leaves.row[hit]] = True
            restarts += int(rows.sum())
            again = torch.arange(num_samples * B, device=lam.device)
            pending = torch.cat([pending[~rows[pending % B]], again[rows[again % B]]])
    if pending.numel():
        raise RuntimeError(
            f"MePoly sampling: {pending.numel()} of {num_samples * B} samples still rejected after {max_rounds} rounds; "
            f"the cell envelope cannot resolve this density (pass a larger `cells` or `max_cells`)"
        )
    if return_stats:
        return out, SamplingStats(proposals, num_samples * B, violations, restarts, leaves.row.numel())
    return out


def _flat_cdf(leaves: _Cells, rows: int) -> Tensor:
    """Flattened CDF over (row, cell) of the envelope masses (float64): row ``b`` occupies
    ``(b, b + 1]``, so one ``searchsorted`` draws a cell for every row."""
    log_mass = leaves.log_mass.double()
    weight = torch.exp(log_mass - _row_max(log_mass, leaves.row, rows)[leaves.row])
    cumulative = torch.cumsum(weight, 0)
    totals = torch.zeros(rows, dtype=torch.float64, device=weight.device).index_add_(0, leaves.row, weight)
    before = torch.cumsum(totals, 0) - totals  # mass of all earlier rows
    return leaves.row.double() + ((cumulative - before[leaves.row]) / totals[leaves.row]).clamp(max=1.0)
