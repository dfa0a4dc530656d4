r"""Maximum-entropy fit of MePoly to a target density (paper Theorem 3.4, Definition 3.1).

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

import torch
from torch import Tensor

from .distribution import MePoly
from .normalizer import expectation

__all__ = ["target_moments", "fit_max_entropy"]


def target_moments(log_density, family) -> Tensor:
    """:math:`\\mathbb{E}_{target}[\\phi]` on the family's quadrature rule for an unnormalized
    ``log_density`` (numpy or torch callable on ``(N, D)`` points)."""
    nodes = family.nodes
    logp = torch.as_tensor(log_density(nodes.double().cpu().numpy()), dtype=torch.float64)
    weights = torch.softmax(logp + family.log_weights.double().cpu(), dim=0)
    return (weights[:, None] * family.node_features.double().cpu()).sum(0).to(family.node_features)


def fit_max_entropy(moments: Tensor, family, max_iter: int = 500, tolerance: float = 1e-9) -> Tensor:
    """Natural parameters whose MePoly moments match ``moments`` (L-BFGS on the convex dual)."""
    lam = torch.zeros_like(moments, requires_grad=True)
    optimizer = torch.optim.LBFGS([lam], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = MePoly(lam, family, validate_args=False).log_partition - (lam * moments).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return lam.detach()
