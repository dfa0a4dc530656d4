r"""Fitting MePoly to a target density: the maximum-entropy moment fit (paper Theorem 3.4,
Definition 3.1) and the L2 projection of an energy onto the polynomial span.

Among all densities on the cube whose moments :math:`\mathbb{E}[\phi]` equal the target's
moments :math:`m`, the one of maximum entropy is :math:`p_{\lambda^*}` with

.. math::

    \lambda^* = \arg\min_\lambda\; A(\lambda) - \lambda^\top m
    \quad(\text{convex; gradient } \mu(\lambda) - m,\ \text{Hessian } \operatorname{Cov}[\phi]),

equivalently the minimizer of :math:`\mathrm{KL}(\text{target} \,\|\, p_\lambda)`.  Theorem 3.4
says these fits converge to the target as the order grows.  The objective runs through the
streaming normalizer, so this is also a small end-to-end exercise of its gradients.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.polynomial import legendre
from torch import Tensor

from .distribution import MePoly

__all__ = ["target_moments", "fit_max_entropy", "project_energy"]


def target_moments(log_density, family) -> Tensor:
    """:math:`\\mathbb{E}_{target}[\\phi]` on the family's quadrature rule for an unnormalized
    ``log_density`` (numpy or torch callable on ``(N, D)`` points)."""
    nodes = family.nodes
    logp = torch.as_tensor(log_density(nodes.double().cpu().numpy()), dtype=torch.float64)
    weights = torch.softmax(logp + family.log_weights.double().cpu(), dim=0)
    return (weights[:, None] * family.node_features.double().cpu()).sum(0).to(family.node_features)


def fit_max_entropy(moments: Tensor, family, max_iter: int = 500, tolerance: float = 1e-9) -> Tensor:
    """Natural parameters whose MePoly moments match ``moments`` (L-BFGS on the convex dual)."""
    natural_params = torch.zeros_like(moments, requires_grad=True)
    optimizer = torch.optim.LBFGS([natural_params], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = MePoly(natural_params, family, validate_args=False).log_partition - (natural_params * moments).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return natural_params.detach()


def project_energy(log_density, family, points_per_dim: int = 256) -> torch.Tensor:
    r"""L2 projection of an energy :math:`f(x)` onto the family's polynomial span.

    Solves the least-squares problem :math:`\min_\lambda \int (f - \lambda^\top\phi)^2 dx`
    with a float64 tensor Gauss-Legendre rule (``points_per_dim`` per axis); for the
    Legendre basis the normal equations are diagonal up to quadrature error.  Returns
    float64 natural parameters of shape ``(family.num_params,)``.
    """
    x1, w1 = legendre.leggauss(points_per_dim)
    grids = np.meshgrid(*([x1] * family.dim), indexing="ij")
    nodes = np.stack([g.reshape(-1) for g in grids], axis=-1)
    weights = np.prod(np.stack(np.meshgrid(*([w1] * family.dim), indexing="ij"), -1).reshape(-1, family.dim), -1)
    f = np.asarray(log_density(nodes), dtype=np.float64)
    phi = family.features(torch.from_numpy(nodes).to(family.dtype)).double().numpy()
    sqrt_w = np.sqrt(weights)[:, None]
    coef, *_ = np.linalg.lstsq(phi * sqrt_w, f * sqrt_w[:, 0], rcond=None)
    return torch.from_numpy(coef)
