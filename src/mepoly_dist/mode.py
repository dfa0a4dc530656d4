r"""The mode of MePoly: :math:`\arg\max_{x \in [-1,1]^D} \lambda^\top\phi(x)` (paper section 3.2:
"action selection is a single-step energy minimization").

Coarse search: the ``candidates`` best points of a Chebyshev-spaced grid (D <= 3), or of the
quadrature nodes and the sampler's Chebyshev lattice (higher D); both include the faces of the
cube (streamed in chunks, so memory stays ``batch x (candidates + chunk)``).  Several candidates are refined because near-tied maxima in
different basins are common in multi-modal policies.  Refinement: projected Newton ascent from each
candidate, with the exact gradient and Hessian from :func:`mepoly_dist.basis.features_jacobian_hessian`;
a step is taken only if it raises the energy (backtracking), falling back to gradient ascent
where the Hessian is not negative definite.  A candidate is settled once its step, or the gain the
step could make, is below the tolerance or the energy's rounding error.  The best refined
candidate is returned.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import basis as _basis
from .node_features import DenseNodeFeatures, KroneckerNodeFeatures

__all__ = ["find_mode"]


#: points per axis of the mode's search grid in low dimension (Chebyshev-spaced, faces included)
SEARCH_POINTS = {1: 2049, 2: 161, 3: 41}


def _search_points(family) -> tuple[Tensor, Tensor]:
    """Points where the coarse search evaluates the energy, with their features (cached on the
    family).  D <= 3: a Chebyshev-spaced tensor grid (spacing ~ 1/n^2 at the faces, where modes
    of bounded policies often sit), fine enough that a few Newton steps finish the job.  Higher
    D: the quadrature nodes plus the sampler's Chebyshev lattice (which includes the faces)."""
    key = ("mode_search", family.dtype, str(family.device))
    if key not in family._sampler_cache:
        if family.dim in SEARCH_POINTS:
            n = SEARCH_POINTS[family.dim]
            line = -torch.cos(torch.pi * torch.arange(n, dtype=torch.float64) / (n - 1))
            line[0], line[-1] = -1.0, 1.0
            points = torch.cartesian_prod(*([line] * family.dim)).reshape(-1, family.dim).to(family.nodes)
            # a tensor grid: energies by sum factorization from the 1-D table (as the normalizer's
            # Kronecker operator), never the (points, F) feature matrix
            table = _basis.univariate_table(line, family.order, family.basis).to(family.node_features)
            operator = KroneckerNodeFeatures(table, family.exponents) if family.dim > 1 else DenseNodeFeatures(table)
        else:
            from .sampling import default_cells_per_dim, lattice_for

            lattice = lattice_for(family, default_cells_per_dim(family.dim))
            points = torch.cat([family.nodes, lattice.points.to(family.nodes)])
            operator = DenseNodeFeatures(torch.cat([family.node_features, lattice.features]))
        family._sampler_cache[key] = (points, operator)
    return family._sampler_cache[key]


def _coarse_candidates(lam: Tensor, family, k: int) -> Tensor:
    """The ``k`` highest-energy points of :func:`_search_points` (streamed in blocks of nodes)."""
    points, operator = _search_points(family)
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


def _energy_grad_hessian(x: Tensor, lam: Tensor, family):
    """Energy, gradient and Hessian at candidates ``x`` ``(B, k, D)`` (exact, by the product rule),
    and the rounding error of the energy (64 ulp of the sum of its terms' magnitudes)."""
    phi, jac, hess = family.features_jacobian_hessian(x)
    terms = phi * lam[:, None]
    rounding = 64 * torch.finfo(x.dtype).eps * terms.abs().sum(-1)
    return terms.sum(-1), (jac * lam[:, None, None]).sum(-1), (hess * lam[:, None, None, None]).sum(-1), rounding


def _energy(x: Tensor, lam: Tensor, family) -> Tensor:
    return (family.features(x) * lam[:, None]).sum(-1)


def find_mode(natural_params: Tensor, family, candidates: int = 8, iterations: int = 30, tolerance: float = 1e-7) -> Tensor:
    """Highest-density point for each row of ``natural_params``; shape ``batch_shape + (D,)``.

    Stops after ``iterations`` Newton steps, or once no candidate moves by more than ``tolerance``."""
    batch_shape = natural_params.shape[:-1]
    lam = natural_params.detach().reshape(-1, family.num_params)
    with torch.no_grad():
        x = _coarse_candidates(lam, family, candidates)
    dim = family.dim
    for _ in range(iterations):
        with torch.no_grad():
            energy, grad, hess, rounding = _energy_grad_hessian(x, lam, family)
            # active set: coordinates on a face of the cube whose gradient points outward stay fixed
            fixed = ((x >= 1) & (grad > 0)) | ((x <= -1) & (grad < 0))
            grad = grad.masked_fill(fixed, 0.0)
            pair = fixed[..., :, None] | fixed[..., None, :]
            hess = hess.masked_fill(pair, 0.0) - torch.diag_embed(fixed.to(hess.dtype))
            # Newton direction where -H is positive definite, gradient direction elsewhere
            chol, info = torch.linalg.cholesky_ex(-hess)
            newton = torch.cholesky_solve(grad.unsqueeze(-1), chol).squeeze(-1)
            ok = (info == 0)[..., None] & torch.isfinite(newton).all(-1, keepdim=True)
            scale = 1.0 / (grad.norm(dim=-1, keepdim=True) + hess.abs().amax((-1, -2))[..., None] + 1e-12)
            direction = torch.where(ok, newton, grad * scale)
            step = torch.ones_like(energy)
            accepted = torch.zeros_like(energy, dtype=torch.bool)
            length = direction.abs().amax(-1)
            # converged candidates, nothing left to backtrack: the step is below the tolerance, or
            # the gain it can make (first order, an upper bound along an ascent direction) is below
            # the rounding error of the energy, so no trial could show an improvement
            settled = (length < tolerance) | ((grad * direction).sum(-1) <= rounding)
            if bool(settled.all()):
                break
            new_x = x.clone()
            for _ in range(20):
                trial = (x + step[..., None] * direction).clamp(-1.0, 1.0)
                better = (_energy(trial, lam, family) > energy) & ~accepted
                new_x = torch.where(better[..., None], trial, new_x)
                accepted |= better
                settled |= step * length < tolerance
                if bool((accepted | settled).all()):
                    break
                step = torch.where(accepted, step, step / 2)
            if not accepted.any():
                break
            moved = float((new_x - x).abs().max())
            x = new_x
            if moved < tolerance:  # every candidate has converged
                break
    with torch.no_grad():
        best = _energy(x, lam, family).argmax(dim=-1)
        mode = x[torch.arange(x.shape[0], device=x.device), best]
    return mode.reshape(*batch_shape, dim)
