r"""PPO-GMM: a K-component Gaussian-mixture action head for SB3's actor-critic policies.

The paper's second RL baseline (section 5, "Baselines"): ``PPO(GMMActorCriticPolicy, env)``.

**Density.**  The network predicts, per state, mixture logits :math:`\ell_k`, means
:math:`\mu_k \in \mathbb{R}^D` and log standard deviations :math:`\log\sigma_k` of K diagonal
Gaussians on an unbounded pre-action :math:`u`; the action is squashed into the cube,
:math:`a = \tanh(u) \in (-1, 1)^D`, as in SB3's ``SquashedDiagGaussianDistribution`` (SAC).
The density of :math:`a` is exact by the change of variables
(:mod:`~mepoly_dist.zoo.baselines.squashing`, which also guards actions on the cube's faces):

.. math::

    \log \pi(a) = \operatorname{logsumexp}_k \Big[\log w_k + \sum_{d} \log
    \mathcal{N}(u_d; \mu_{kd}, \sigma_{kd}^2)\Big] - \sum_d \log(1 - a_d^2),
    \qquad w = \operatorname{softmax}(\ell), \quad u = \operatorname{atanh}(a).

Nothing is clipped: the policy reports ``squash_output = True``, so
SB3 stores the actions in :math:`(-1, 1)^D` and maps them affinely to the environment's bounds
(``unscale_action``), exactly as for MePoly.

**Entropy.**  A Gaussian mixture has no closed-form entropy, and MePoly's advantage here is
exactly that its entropy is exact.  :meth:`GMMDistribution.entropy` is a *Monte-Carlo
estimate*, stratified over the components and reparameterized so that its gradient reaches
the weights, means and scales:

.. math::

    H(\pi) = -\sum_k w_k\, \mathbb{E}_{\epsilon \sim \mathcal{N}(0, I)}
    \Big[\log \pi\big(\tanh(\mu_k + \sigma_k \odot \epsilon)\big)\Big]
    \approx -\sum_k w_k \frac{1}{M} \sum_{m=1}^{M} \log \pi\big(\tanh(\mu_k + \sigma_k \odot \epsilon_m)\big),

an unbiased estimate of :math:`H` (and of its gradient) with ``entropy_samples = M`` draws per
component (default 16), so it is noisy, unlike MePoly's exact entropy.  PPO's entropy bonus (eq. 12) uses it like an exact entropy.

**Initialisation.**  SB3's orthogonal init (gain 0.01) makes the head's outputs nearly
state-independent at the start; the mean biases are then spread uniformly in
:math:`[-1, 1]^D` (u-space, from torch's RNG, so seeded runs repeat) so that the K components
start apart, and the log-std biases are 0 (:math:`\sigma = 1`, which ``tanh`` spreads over the
whole cube).  Log standard deviations are clamped to :math:`[-5, 2]` as in SB3's SAC.

References: Ren et al., "Probabilistic mixture-of-experts for efficient deep reinforcement
learning" (2021), the paper's PPO-GMM baseline.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import Tensor, nn

from ...sb3.distributions import HeadDistribution
from ...sb3.policies import CustomHeadPolicyMixin
from .squashing import pre_action, squashed_log_prob

__all__ = ["GMMDistribution", "GMMHead", "GMMActorCriticPolicy", "LOG_STD_MIN", "LOG_STD_MAX"]

#: clamp of the components' log standard deviations (SB3's SAC uses the same bounds up to -20)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
SelfGMMDistribution = TypeVar("SelfGMMDistribution", bound="GMMDistribution")


class GMMHead(nn.Module):
    """Linear map from a policy latent to the mixture parameters, flattened as
    ``[logits (K), means (K * D), log_stds (K * D)]``."""

    def __init__(self, latent_dim: int, action_dim: int, n_components: int):
        super().__init__()
        self.action_dim, self.n_components = action_dim, n_components
        self.linear = nn.Linear(latent_dim, n_components * (1 + 2 * action_dim))

    def forward(self, latent: Tensor) -> Tensor:
        return self.linear(latent)

    @torch.no_grad()
    def spread_means(self) -> None:
        """Mean biases uniform in ``[-1, 1]^D`` (u-space), log-std and logit biases 0."""
        K, D = self.n_components, self.action_dim
        bias = torch.zeros_like(self.linear.bias)
        bias[K : K + K * D] = torch.rand(K * D, dtype=bias.dtype, device=bias.device) * 2 - 1
        self.linear.bias.copy_(bias)


class GMMDistribution(HeadDistribution):
    r"""SB3 distribution of :math:`a = \tanh(u)`, :math:`u` a K-component diagonal Gaussian mixture.

    Args:
        action_dim: D, the size of the flat ``Box`` action space.
        n_components: K (default 4, the paper's setting).
        entropy_samples: M, Monte-Carlo draws per component of :meth:`entropy` (default 16).

    Example::

        >>> dist = GMMDistribution(action_dim=2, n_components=4)
        >>> head = dist.proba_distribution_net(latent_dim=8)
        >>> actions, log_prob = dist.log_prob_from_params(head(torch.zeros(5, 8)))
        >>> actions.shape, log_prob.shape, dist.entropy().shape
        (torch.Size([5, 2]), torch.Size([5]), torch.Size([5]))
    """

    def __init__(self, action_dim: int, n_components: int = 4, entropy_samples: int = 16):
        super().__init__()
        if int(n_components) < 1:
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        if int(entropy_samples) < 1:
            raise ValueError(f"entropy_samples must be a positive integer, got {entropy_samples!r}")
        self.action_dim, self.n_components, self.entropy_samples = int(action_dim), int(n_components), int(entropy_samples)
        self.logits = self.means = self.log_stds = None

    def proba_distribution_net(self, latent_dim: int) -> GMMHead:
        return GMMHead(latent_dim, self.action_dim, self.n_components)

    def proba_distribution(self: SelfGMMDistribution, params: Tensor) -> SelfGMMDistribution:
        """Split ``params`` ``(batch, K (1 + 2D))`` into logits ``(batch, K)``, means and log-stds ``(batch, K, D)``."""
        K, D = self.n_components, self.action_dim
        if params.shape[-1] != K * (1 + 2 * D):
            raise ValueError(f"expected {K * (1 + 2 * D)} mixture parameters (K = {K}, D = {D}), got {params.shape[-1]}")
        batch = params.shape[:-1]
        self.logits = params[..., :K]
        self.means = params[..., K : K + K * D].reshape(*batch, K, D)
        self.log_stds = params[..., K + K * D :].reshape(*batch, K, D).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self

    def _log_prob_u(self, u: Tensor) -> Tensor:
        """Mixture log-density of pre-actions ``u`` of shape ``(*sample, batch, D)``: log-sum-exp over components."""
        u = u.unsqueeze(-2)  # (..., batch, 1, D)
        z = (u - self.means) * torch.exp(-self.log_stds)
        component = (-0.5 * z.pow(2) - self.log_stds - 0.5 * math.log(2 * math.pi)).sum(-1)  # (..., batch, K)
        return torch.logsumexp(torch.log_softmax(self.logits, -1) + component, dim=-1)

    def _log_prob_from_u(self, u: Tensor) -> Tensor:
        return squashed_log_prob(self._log_prob_u(u), u)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Exact log-density of ``actions`` ``(batch, D)`` in the open cube; shape ``(batch,)``."""
        return self._log_prob_from_u(pre_action(actions))

    def entropy(self) -> Tensor:
        """Stratified, reparameterized Monte-Carlo estimate of the entropy (see the module docstring); shape ``(batch,)``."""
        eps = torch.randn((self.entropy_samples, *self.means.shape), dtype=self.means.dtype, device=self.means.device)
        u = self.means + torch.exp(self.log_stds) * eps  # (M, batch, K, D): M draws from every component
        # evaluate the mixture at every draw: (M, K, batch, D) -> log-density (M, K, batch) -> (M, batch, K)
        log_p = self._log_prob_from_u(u.transpose(-2, -3)).transpose(-1, -2)
        weights = torch.softmax(self.logits, -1)  # (batch, K)
        return -(weights * log_p.mean(0)).sum(-1)

    def sample(self) -> Tensor:
        component = torch.distributions.Categorical(logits=self.logits).sample()  # (batch,)
        index = component[..., None, None].expand(*component.shape, 1, self.action_dim)
        mean = self.means.gather(-2, index).squeeze(-2)
        std = torch.exp(self.log_stds.gather(-2, index).squeeze(-2))
        return torch.tanh(mean + std * torch.randn_like(mean))

    def mode(self) -> Tensor:
        """The squashed mean of the heaviest component (a mixture's global mode has no closed form)."""
        index = self.logits.argmax(-1)[..., None, None].expand(*self.logits.shape[:-1], 1, self.action_dim)
        return torch.tanh(self.means.gather(-2, index).squeeze(-2))


class GMMActorCriticPolicy(CustomHeadPolicyMixin, ActorCriticPolicy):
    r"""SB3 actor-critic policy whose actor is a tanh-squashed Gaussian mixture (:class:`GMMDistribution`).

    ``policy_kwargs`` of this policy, stored by ``save`` so that ``load`` rebuilds it:
    ``n_components`` (K, default 4) and ``entropy_samples`` (M, default 16).  All other keys
    are SB3's (``net_arch``, ``activation_fn``, ``ortho_init``, ...); the Gaussian-only ones
    (``use_sde``, ``log_std_init``, ``full_std``, ``use_expln``, ``squash_output``) are
    rejected.  Needs a flat ``Box`` action space with finite bounds.  The options, the head and
    the ``save`` record are :class:`~mepoly_dist.sb3.CustomHeadPolicyMixin`'s; after SB3's
    orthogonal initialisation the component means are spread (:meth:`GMMHead.spread_means`).

    Example::

        >>> from stable_baselines3 import PPO
        >>> model = PPO(GMMActorCriticPolicy, "Pendulum-v1", n_steps=64, batch_size=64,
        ...             policy_kwargs=dict(n_components=3))
        >>> model.policy.action_dist.n_components
        3
    """

    head_distribution = GMMDistribution
    action_dist: GMMDistribution
    action_net: GMMHead

    def _init_action_net(self) -> None:
        self.action_net.spread_means()
