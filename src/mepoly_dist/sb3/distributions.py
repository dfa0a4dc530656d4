r"""``MePolyDistribution``: the MePoly density as a Stable-Baselines3 action distribution.

:class:`HeadDistribution` is the common ground of this adapter's action distributions (MePoly
here, the Gaussian mixture of :mod:`mepoly_dist.zoo.baselines.gmm`): SB3's interface, where
``proba_distribution`` takes what the ``proba_distribution_net`` returns and the ``*_from_params``
methods follow from it; :class:`~mepoly_dist.sb3.CustomHeadPolicyMixin` builds policies on it.

SB3 splits a policy's action distribution into a network part (``proba_distribution_net``)
and a parameter-to-distribution part (``proba_distribution``).  Here the network part is the
core :class:`~mepoly_dist.MePolyHead`, a linear layer from the policy latent to the natural
parameters :math:`\lambda` (paper section 4.1) whose ``forward`` returns the core
:class:`~mepoly_dist.MePoly`; ``proba_distribution`` takes that distribution (or natural
parameters) and wraps it, so ``MePolyDistribution(...).distribution`` is a real
``torch.distributions.Distribution`` and ``kl_divergence`` (TRPO) uses its registered exact KL.

Actions live on the cube :math:`[-1, 1]^D`; the policy maps them to the environment's bounds
with SB3's ``unscale_action`` (see :mod:`mepoly_dist.sb3.policies`).  ``log_prob`` and
``entropy`` have shape ``(batch,)`` exactly, which PPO's ratio
:math:`\exp(\log\pi_\theta(a|s) - \log\pi_{\theta_{old}}(a|s))` (eq. 11) relies on.
"""

from __future__ import annotations

from typing import TypeVar

from stable_baselines3.common.distributions import Distribution
from torch import Tensor

from ..blocks import BlockMePoly, BlockMePolyFamily, parse_blocks
from ..distribution import MePoly
from ..family import MePolyFamily
from ..heads import MePolyHead

__all__ = ["HeadDistribution", "MePolyDistribution", "DEFAULT_ORDER"]

#: default polynomial order of the action density (the paper's RL setting)
DEFAULT_ORDER = 14

SelfMePolyDistribution = TypeVar("SelfMePolyDistribution", bound="MePolyDistribution")


class HeadDistribution(Distribution):
    """SB3 distribution over actions in ``[-1, 1]^D`` built as ``cls(action_dim, **options)``, whose
    ``proba_distribution(params)`` takes what its ``proba_distribution_net`` returns."""

    def actions_from_params(self, params, deterministic: bool = False) -> Tensor:
        self.proba_distribution(params)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, params) -> tuple[Tensor, Tensor]:
        actions = self.actions_from_params(params)
        return actions, self.log_prob(actions)


class MePolyDistribution(HeadDistribution):
    r"""SB3 distribution over actions in :math:`[-1, 1]^D` with a MePoly density.

    Args:
        action_dim: D, the size of the (flat) ``Box`` action space.
        order: polynomial order n (total degree); the head predicts
            :math:`\binom{n + D}{D} - 1` coefficients.
        basis: ``"legendre"`` (default) or ``"monomial"``.
        quadrature: rule spec or :class:`~mepoly_dist.quadrature.QuadratureRule` (``None``: the
            family's default for this dimension, e.g. 80 x 80 Gauss-Legendre for D = 2).
        lambda_clip: optional clamp of the natural parameters (see :class:`~mepoly_dist.MePolyHead`).
        validate_args: forwarded to :class:`~mepoly_dist.MePoly`.
        blocks: ``None`` (default): one joint density on :math:`[-1, 1]^D`.  Block sizes (a list
            summing to D, or one int) model the action as a product of independent MePoly blocks
            over consecutive coordinates (:class:`~mepoly_dist.BlockMePoly`, each block of
            ``order`` with its own default rule): the cheap fallback for D >= 4, whose joint
            density's exact sampler is slow (see ``benchmarks/results/maniskill_heads/maniskill_heads.md``).

    Example::

        >>> dist = MePolyDistribution(action_dim=2, order=6)
        >>> head = dist.proba_distribution_net(latent_dim=64)
        >>> actions = dist.actions_from_params(head.natural_params(torch.zeros(5, 64)))
        >>> dist.log_prob(actions).shape, dist.entropy().shape
        (torch.Size([5]), torch.Size([5]))
    """

    distribution: MePoly | BlockMePoly

    def __init__(
        self,
        action_dim: int,
        order: int = DEFAULT_ORDER,
        basis: str = "legendre",
        quadrature=None,
        lambda_clip: float | None = None,
        validate_args: bool | None = None,
        blocks=None,
    ):
        super().__init__()
        self.action_dim = action_dim
        if blocks is None:
            self.family = MePolyFamily(action_dim, order, basis=basis, quadrature=quadrature)
        else:
            self.family = BlockMePolyFamily(parse_blocks(blocks, action_dim), order, basis=basis, quadrature=quadrature)
        self.lambda_clip = lambda_clip
        self.validate_args = validate_args

    def proba_distribution_net(self, latent_dim: int) -> MePolyHead:
        """The layer from the policy latent (size ``latent_dim``) to the action density
        (:class:`~mepoly_dist.MePolyHead`, the policy's ``action_net``)."""
        return MePolyHead(latent_dim, self.family, self.lambda_clip, validate_args=self.validate_args)

    def proba_distribution(self: SelfMePolyDistribution, natural_params: Tensor | MePoly | BlockMePoly) -> SelfMePolyDistribution:
        """Wrap the density for ``natural_params``, of shape ``(batch, num_params)``, or the
        density the head returned (``action_net(latent)``, which carries its natural parameters)."""
        if isinstance(natural_params, (MePoly, BlockMePoly)):
            if not natural_params.family.same_family(self.family):
                raise ValueError("the distribution's family is not this action distribution's family")
            self.distribution = natural_params
        else:
            # a new MePoly object each time: TRPO keeps a shallow copy of the old distribution
            self.distribution = self.family.distribution(natural_params, validate_args=self.validate_args)
        return self

    def log_prob(self, actions: Tensor) -> Tensor:
        """Exact log-density of ``actions`` ``(batch, D)`` in the cube; shape ``(batch,)``."""
        return self.distribution.log_prob(actions)

    def entropy(self) -> Tensor:
        """Exact differential entropy on the quadrature measure; shape ``(batch,)``."""
        return self.distribution.entropy()

    def sample(self) -> Tensor:
        return self.distribution.sample()

    def mode(self) -> Tensor:
        return self.distribution.mode
