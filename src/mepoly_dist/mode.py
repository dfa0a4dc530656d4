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
    """Energy, gradient and Hessian at points ``x`` ``(M, D)`` with their own parameters ``lam``
    ``(M, F)`` (exact, by the product rule), and the rounding error of the energy (64 ulp of the
    sum of its terms' magnitudes)."""
    phi, jac, hess = family.features_jacobian_hessian(x)
    terms = phi * lam
    rounding = 64 * torch.finfo(x.dtype).eps * terms.abs().sum(-1)
    return terms.sum(-1), (jac * lam[:, None]).sum(-1), (hess * lam[:, None, None]).sum(-1), rounding


def _energy(x: Tensor, lam: Tensor, family) -> Tensor:
    """Energies at points ``x`` ``(M, D)`` with their own parameters ``lam`` ``(M, F)``."""
    return (family.features(x) * lam).sum(-1)


def find_mode(natural_params: Tensor, family, candidates: int = 8, iterations: int = 30, tolerance: float = 1e-7) -> Tensor:
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
        params = lam.repeat_interleave(k, dim=0)  # (B k, F): each candidate's row
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
            # Newton direction where -H is positive definite, gradient direction elsewhere
            chol, info = torch.linalg.cholesky_ex(-hess)
            newton = torch.cholesky_solve(grad.unsqueeze(-1), chol).squeeze(-1)
            ok = (info == 0)[..., None] & torch.isfinite(newton).all(-1, keepdim=True)
            scale = 1.0 / (grad.norm(dim=-1, keepdim=True) + hess.abs().amax((-1, -2))[..., None] + 1e-12)
            direction = torch.where(ok, newton, grad * scale)
            length = direction.abs().amax(-1)
            # converged candidates leave: the step is below the tolerance, or the gain it can make
            # (first order, an upper bound along an ascent direction) is below the rounding error
            # of the energy, so no trial could show an improvement
            moving = ~((length < tolerance) | ((grad * direction).sum(-1) <= rounding))
            active, xa, la = active[moving], xa[moving], la[moving]
            energy, direction, length = energy[moving], direction[moving], length[moving]
            # backtracking: halve the step until the energy rises (or the step is below the tolerance)
            step = torch.ones_like(energy)
            accepted = torch.zeros_like(energy, dtype=torch.bool)
            settled = torch.zeros_like(accepted)
            new_x = xa.clone()
            for _ in range(20):
                if bool((accepted | settled).all()):
                    break
                trial = (xa + step[:, None] * direction).clamp(-1.0, 1.0)
                better = (_energy(trial, la, family) > energy) & ~accepted
                new_x = torch.where(better[:, None], trial, new_x)
                accepted |= better
                settled |= step * length < tolerance
                step = torch.where(accepted, step, step / 2)
            x = x.index_put((active,), new_x)
            active = active[accepted & ((new_x - xa).abs().amax(-1) >= tolerance)]
        energy = _energy(x, params, family).view(-1, k)
        mode = x.view(-1, k, dim)[torch.arange(energy.shape[0], device=x.device), energy.argmax(dim=-1)]
    return mode.reshape(*batch_shape, dim)
