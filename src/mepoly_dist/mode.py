r"""The mode of MePoly: :math:`\arg\max_{x \in [-1,1]^D} \lambda^\top\phi(x)` (paper section 3.2:
"action selection is a single-step energy minimization").

Coarse search (D <= 3): the energy on a Chebyshev-spaced tensor grid with faces included
(:func:`search_points_per_axis`: about 3 points per unit of order per axis, by sum factorization),
and its ``candidates`` highest *local maxima*, one per basin, since near-tied maxima in different
basins are common in multi-modal policies.  Higher D: the best points of the quadrature nodes and
the sampler's Chebyshev lattice.  Refinement: projected saddle-free Newton ascent from each
candidate (the Newton step with every Hessian curvature taken by its magnitude, so it climbs off
ridges and saddles too), with the exact gradient and Hessian by sum factorization of the
coefficients; a step is taken only if it raises the energy (backtracking).  A candidate is settled
once its step, or the gain the step could make, is below the tolerance or the energy's rounding
error, and only the candidates still moving take further steps.  The best refined candidate is
returned.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import basis as _basis
from .node_features import DenseNodeFeatures, KroneckerNodeFeatures, dense_index

__all__ = ["find_mode"]


#: points per axis of the mode's search grid in low dimension, per unit of order (Chebyshev-spaced,
#: faces included): the critical points of a degree-n polynomial are ~1/n apart in the middle of an
#: axis and ~1/n^2 at its ends, and so are these points, several per basin
SEARCH_POINTS_PER_ORDER = {1: 16, 2: 3, 3: 3}
#: fewest and most points per axis of the search grid
SEARCH_POINTS_RANGE = {1: (65, 2049), 2: (17, 161), 3: (9, 41)}


def search_points_per_axis(dim: int, order: int) -> int:
    """Points per axis of the mode's Chebyshev search grid (D <= 3): ``SEARCH_POINTS_PER_ORDER[D] *
    order + 1`` within :data:`SEARCH_POINTS_RANGE` (33 for a 2-D order-8 head, 57 for order 14)."""
    low, high = SEARCH_POINTS_RANGE[dim]
    return min(high, max(low, SEARCH_POINTS_PER_ORDER[dim] * order + 1))


def _search_points(family) -> tuple[Tensor, Tensor, int | None]:
    """Points where the coarse search evaluates the energy, with their features and the grid's
    points per axis (cached on the family).  D <= 3: a Chebyshev-spaced tensor grid (spacing ~
    1/n^2 at the faces, where modes of bounded policies often sit).  Higher D: the quadrature
    nodes plus the sampler's Chebyshev lattice (which includes the faces); no grid (``None``)."""
    key = ("mode_search", family.dtype, str(family.device))
    if key not in family._sampler_cache:
        if family.dim in SEARCH_POINTS_PER_ORDER:
            n = search_points_per_axis(family.dim, family.order)
            line = -torch.cos(torch.pi * torch.arange(n, dtype=torch.float64) / (n - 1))
            line[0], line[-1] = -1.0, 1.0
            points = torch.cartesian_prod(*([line] * family.dim)).reshape(-1, family.dim).to(family.nodes)
            # a tensor grid: energies by sum factorization from the 1-D table (as the normalizer's
            # Kronecker operator), never the (points, F) feature matrix
            table = _basis.univariate_table(line, family.order, family.basis).to(family.node_features)
            operator = KroneckerNodeFeatures(table, family.exponents) if family.dim > 1 else DenseNodeFeatures(table)
        else:
            from .sampling import default_cells_per_dim, lattice_for

            n = None
            lattice = lattice_for(family, default_cells_per_dim(family.dim))
            points = torch.cat([family.nodes, lattice.points.to(family.nodes)])
            operator = DenseNodeFeatures(torch.cat([family.node_features, lattice.features]))
        family._sampler_cache[key] = (points, operator, n)
    return family._sampler_cache[key]


def _neighbourhood_max(grid: Tensor) -> Tensor:
    """Largest value over each point's 3^D window (itself and its neighbours) of ``grid`` ``(B,
    n, ..., n)``: one running maximum with the two shifted copies per axis (separable, and much
    cheaper on the CPU than a stride-1 ``max_pool``)."""
    out = grid
    for axis in range(1, grid.dim()):
        shifted = out.clone()
        length = grid.shape[axis]
        shifted.narrow(axis, 1, length - 1).copy_(torch.maximum(out.narrow(axis, 1, length - 1), out.narrow(axis, 0, length - 1)))
        shifted.narrow(axis, 0, length - 1).copy_(torch.maximum(shifted.narrow(axis, 0, length - 1), out.narrow(axis, 1, length - 1)))
        out = shifted
    return out


def _coarse_candidates(lam: Tensor, family, k: int) -> Tensor:
    """Starting points ``(B, k, D)`` for the Newton refinement.

    On a grid (D <= 3): the ``k`` highest *local maxima* of the energy on the grid (points at
    least as high as their 3^D - 1 neighbours, found with a max-pool), so that the candidates sit
    in ``k`` different basins rather than crowding one peak; rows with fewer local maxima repeat
    their best.  Otherwise: the ``k`` highest points, streamed in blocks of nodes."""
    points, operator, n = _search_points(family)
    if n is not None:
        dim, nodes = family.dim, points.shape[0]
        rows = max(1, (1 << 22) // nodes)  # bound the (rows, nodes) energies
        starts = []
        for r in range(0, lam.shape[0], rows):
            grid = operator.energies(operator.prepare(lam[r : r + rows]), slice(0, nodes)).reshape(-1, *([n] * dim))
            neighbourhood = _neighbourhood_max(grid)
            peaks = torch.where(grid >= neighbourhood, grid, -torch.inf).flatten(1)
            best_e, best_i = peaks.topk(min(k, nodes), dim=-1)
            starts.append(torch.where(torch.isfinite(best_e), best_i, best_i[:, :1]))
        return points[torch.cat(starts)]
    prepared = operator.prepare(lam)
    best_e = best_i = None
    chunk = max(8192, (1 << 20) // max(lam.shape[0], 1))
    for block in operator.blocks(chunk):
        e = operator.energies(prepared, block)
        idx = torch.arange(block.start, block.stop, device=lam.device).expand_as(e)
        if best_e is not None:
            e, idx = torch.cat([best_e, e], -1), torch.cat([best_i, idx], -1)
        best_e, pos = e.topk(min(k, e.shape[1]), dim=-1)
        best_i = idx.gather(-1, pos)
    return points[best_i]  # (B, k, D)


def _contract(coef: Tensor, tables: Tensor) -> Tensor:
    """``sum_k coef[m, k_1..k_D] prod_d tables[m, d, j_d, k_d]`` for coefficients ``(M, K^D)``
    (row-major multi-index) and per-axis tables ``(M, D, J, K)``; returns ``(M, J^D)`` (row-major
    in ``j``).  One axis at a time: ``O(J K^D)`` per point."""
    M, dim, J, K = tables.shape
    out = coef.reshape(M, K, K ** (dim - 1))  # (M, k_d, [k_{d+1}..k_D] x [j_1..j_{d-1}])
    for d in range(dim):
        rest = K ** (dim - 1 - d)
        out = (tables[:, d] @ out).reshape(M, J, rest, J**d)  # (M, j_d, k_{d+1}.., j_1..)
        out = out.permute(0, 2, 3, 1).reshape(M, K if d < dim - 1 else 1, (rest // K if d < dim - 1 else 1) * J ** (d + 1))
    return out.reshape(M, J**dim)


def _dense_coefficients(lam: Tensor, family) -> Tensor:
    """Natural parameters ``(M, F)`` scattered into the dense ``(M, K^D)`` multi-index layout
    (``K = order + 1``; the coefficients of degree above the order are zero)."""
    K = family.order + 1
    dense = lam.new_zeros(lam.shape[0], K**family.dim)
    return dense.index_copy_(1, dense_index(family.exponents.to(lam.device), K), lam)


def _energy_grad_hessian(x: Tensor, coef: Tensor, family):
    r"""Energy, gradient and Hessian at points ``x`` ``(M, D)`` with their own coefficients
    ``coef`` ``(M, K^D)`` (:func:`_dense_coefficients`), and the rounding error of the energy (64
    ulp of the sum of its terms' magnitudes).

    Sum factorization: contracting the coefficients one axis at a time with the univariate
    tables :math:`[b, b', b'']` at :math:`x_d` gives every mixed derivative
    :math:`\partial^{j_1}_{x_1} \cdots \partial^{j_D}_{x_D} E`, :math:`j_d \le 2`, in
    :math:`O(3 K^D)` per point, instead of the product rule over all ``F`` features for each of
    the :math:`D^2` second derivatives."""
    dim = x.shape[1]
    tables = torch.stack(_basis.univariate_table(x, family.order, family.basis, derivative=2), -2)  # (M, D, 3, K)
    derivs = _contract(coef, tables).view(-1, *([3] * dim))
    magnitude = _contract(coef.abs(), tables[:, :, :1].abs()).squeeze(-1)
    index = lambda *axes: (slice(None),) + tuple(sum(a == d for a in axes) for d in range(dim))
    energy = derivs[index()]
    grad = torch.stack([derivs[index(d)] for d in range(dim)], -1)
    hess = torch.stack([torch.stack([derivs[index(d, e)] for e in range(dim)], -1) for d in range(dim)], -2)
    return energy, grad, hess, 64 * torch.finfo(x.dtype).eps * magnitude


def _energy(x: Tensor, coef: Tensor, family) -> Tensor:
    """Energies at points ``x`` ``(M, D)`` with their own coefficients ``coef`` ``(M, K^D)``."""
    table = _basis.univariate_table(x, family.order, family.basis)  # (M, D, K)
    return _contract(coef, table.unsqueeze(-2)).squeeze(-1)


#: backtracking steps tried at once: 1, 1/2, ..., 1/128 of the Newton step
BACKTRACKS = 8
_STEPS = 0.5 ** torch.arange(BACKTRACKS, dtype=torch.float64)


def find_mode(natural_params: Tensor, family, candidates: int = 4, iterations: int = 30, tolerance: float = 1e-7) -> Tensor:
    """Highest-density point for each row of ``natural_params``; shape ``batch_shape + (D,)``.

    Every candidate takes up to ``iterations`` Newton steps and leaves the batch once it has
    converged (its step, or the gain its step could make, is below ``tolerance`` or the rounding
    error of the energy, or no step along its direction raises the energy): later steps work on
    the candidates still moving only, so a few slow ones (a flat ridge) do not make every
    candidate pay for their steps."""
    batch_shape = natural_params.shape[:-1]
    lam = natural_params.detach().reshape(-1, family.num_params)
    dim = family.dim
    with torch.no_grad():
        start = _coarse_candidates(lam, family, candidates)  # (B, k, D)
        k = start.shape[1] if start.dim() == 3 else 1
        x = start.reshape(-1, dim).clone()
        params = _dense_coefficients(lam, family).repeat_interleave(k, dim=0)  # (B k, K^D): each candidate's row
        active = torch.arange(x.shape[0], device=x.device)
        for _ in range(iterations):
            if active.numel() == 0:
                break
            xa, la = x[active], params[active]
            energy, grad, hess, rounding = _energy_grad_hessian(xa, la, family)
            # active set: coordinates on a face of the cube whose gradient points outward stay fixed
            fixed = ((xa >= 1) & (grad > 0)) | ((xa <= -1) & (grad < 0))
            grad = grad.masked_fill(fixed, 0.0)
            pair = fixed[..., :, None] | fixed[..., None, :]
            hess = hess.masked_fill(pair, 0.0) - torch.diag_embed(fixed.to(hess.dtype))
            # saddle-free Newton: the Newton step with every curvature of -H taken by its magnitude
            # (floored at a thousandth of the largest), so that the step ascends where H is
            # indefinite too (ridges and saddles between modes) and is Newton's where -H is
            # positive definite
            curvature, basis = torch.linalg.eigh(-hess)
            magnitude = curvature.abs()
            magnitude = magnitude.clamp_min(1e-3 * magnitude.amax(-1, keepdim=True) + 1e-30)
            direction = (basis @ ((basis.transpose(-1, -2) @ grad.unsqueeze(-1)) / magnitude.unsqueeze(-1))).squeeze(-1)
            length = direction.abs().amax(-1)
            # converged candidates leave: the step is below the tolerance, or the gain it can make
            # (first order, an upper bound along an ascent direction) is below the rounding error
            # of the energy, so no trial could show an improvement
            moving = ~((length < tolerance) | ((grad * direction).sum(-1) <= rounding))
            active, xa, la = active[moving], xa[moving], la[moving]
            energy, direction, length = energy[moving], direction[moving], length[moving]
            # backtracking in one batched evaluation: the steps 1, 1/2, ..., 2^-(BACKTRACKS-1)
            # along the direction, and the longest one that raises the energy (no host sync per
            # halving, so the counted syncs of a call do not grow with the batch)
            M = xa.shape[0]
            trial = (xa[:, None] + _STEPS.to(xa)[None, :, None] * direction[:, None]).clamp(-1.0, 1.0)  # (M, T, D)
            trial_coef = la.repeat_interleave(_STEPS.numel(), dim=0)
            better = _energy(trial.reshape(-1, dim), trial_coef, family).view(M, BACKTRACKS) > energy[:, None]
            accepted = better.any(-1)
            first = better.to(torch.int8).argmax(-1)  # the longest improving step
            new_x = torch.where(accepted[:, None], trial[torch.arange(M, device=x.device), first], xa)
            x = x.index_put((active,), new_x)
            active = active[accepted & ((new_x - xa).abs().amax(-1) >= tolerance)]
        energy = _energy(x, params, family).view(-1, k)
        mode = x.view(-1, k, dim)[torch.arange(energy.shape[0], device=x.device), energy.argmax(dim=-1)]
    return mode.reshape(*batch_shape, dim)
