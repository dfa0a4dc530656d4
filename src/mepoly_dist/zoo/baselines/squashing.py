r"""The tanh squashing of the baselines' unbounded densities onto the action cube :math:`(-1, 1)^D`.

The Gaussian-mixture and neural-spline-flow baselines (:mod:`~mepoly_dist.zoo.baselines.gmm`,
:mod:`~mepoly_dist.zoo.baselines.flow`) model a pre-action :math:`u \in \mathbb{R}^D` and act
with :math:`a = \tanh(u)`, as SB3's ``SquashedDiagGaussianDistribution`` (SAC) does.  The density
of :math:`a` follows by the change of variables :math:`u = \operatorname{atanh}(a)`:

.. math::

    \log \pi(a) = \log q(u) - \sum_d \log(1 - \tanh^2 u_d),

with :math:`\log(1 - \tanh^2 u) = 2(\log 2 - u - \operatorname{softplus}(-2u))` evaluated in
:math:`u` for stability.  One numerical guard: a float32 ``tanh`` rounds to :math:`\pm 1` for
:math:`|u| \gtrsim 9`, where ``atanh`` is infinite, so actions within :data:`ACTION_EPS` of a
face are evaluated at distance :data:`ACTION_EPS` (``atanh`` = 7.25); the density there is then
that of the nearest representable point.  MePoly needs none of this: its support is the cube.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ACTION_EPS", "log_one_minus_tanh_sq", "pre_action", "squashed_log_prob"]

#: actions are evaluated at most this close to a face of the cube (float32 ``atanh`` guard)
ACTION_EPS = 1e-6


def log_one_minus_tanh_sq(u: Tensor) -> Tensor:
    r""":math:`\log(1 - \tanh^2 u) = 2(\log 2 - u - \operatorname{softplus}(-2u))`, stable for large :math:`|u|`."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


def pre_action(actions: Tensor) -> Tensor:
    r""":math:`u = \operatorname{atanh}(a)`, with ``actions`` kept :data:`ACTION_EPS` inside the cube."""
    return torch.atanh(actions.clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS))


def squashed_log_prob(log_q: Tensor, u: Tensor) -> Tensor:
    r""":math:`\log \pi(\tanh u) = \log q(u) - \sum_d \log(1 - \tanh^2 u_d)` for ``u`` of shape ``(..., D)``."""
    return log_q - log_one_minus_tanh_sq(u).sum(-1)
