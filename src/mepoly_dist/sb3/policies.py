r"""Actor-critic policies with a custom action head: ``CustomHeadPolicyMixin`` and ``MePolyActorCriticPolicy``.

``PPO(MePolyActorCriticPolicy, env, policy_kwargs=dict(order=14))`` trains with stock
Stable-Baselines3 (PPO, A2C) and sb3-contrib (TRPO, through the registered exact KL).
The policy network predicts the natural parameters :math:`\lambda(s)` of a MePoly density on
:math:`[-1, 1]^D` (paper section 4.1); PPO's clipped objective (eq. 11) uses its exact
``log_prob`` and the entropy bonus (eq. 12) its exact entropy.

:class:`CustomHeadPolicyMixin` is what such a policy adds to SB3's ``ActorCriticPolicy`` (or
sb3-contrib's recurrent one), for any action distribution ``head_distribution`` that SB3's
``Distribution`` interface describes: the MePoly head here, the Gaussian-mixture baseline of
:mod:`mepoly_dist.zoo.baselines.gmm`.  The options of the head are the keyword arguments of
``head_distribution`` after the action dimension; the policy takes them from
``policy_kwargs`` and stores them in ``save`` so that ``load`` rebuilds it.  All other keys are
SB3's (``net_arch``, ``activation_fn``, ``ortho_init``, ...); the Gaussian-only ones
(:data:`GAUSSIAN_OPTIONS`: ``use_sde``, ``log_std_init``, ``full_std``, ``use_expln``,
``squash_output``) are rejected.

Action scaling follows SB3's squashed-policy convention: the policy reports
``squash_output = True``, so SB3 stores the raw actions in ``[-1, 1]^D`` in its rollout buffer
and maps them to the environment's bounds with ``unscale_action``
(:math:`a_{env} = low + (a + 1)(high - low)/2`) for ``env.step`` and ``predict``; nothing is
clipped.  This needs a flat ``Box`` action space with finite bounds.

``policy_kwargs`` keys of :class:`MePolyActorCriticPolicy` (those of
:class:`~mepoly_dist.sb3.MePolyDistribution`): ``order`` (14), ``basis`` (``"legendre"``),
``quadrature`` (a rule spec string, default per dimension), ``lambda_clip`` (``None``),
``validate_args`` (``None``: torch's default), ``blocks`` (``None``: one joint density; block
sizes: a product of MePoly blocks, :class:`~mepoly_dist.BlockMePoly`).
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor, nn

from .distributions import HeadDistribution, MePolyDistribution

__all__ = [
    "MePolyActorCriticPolicy",
    "CustomHeadPolicyMixin",
    "GAUSSIAN_OPTIONS",
    "pop_gaussian_options",
    "apply_orthogonal_init",
    "check_action_space",
]

#: ``ActorCriticPolicy`` options that only make sense for SB3's Gaussian / gSDE heads
GAUSSIAN_OPTIONS = ("use_sde", "log_std_init", "full_std", "use_expln", "squash_output")


def pop_gaussian_options(kwargs: dict[str, Any], owner: str) -> None:
    """Remove :data:`GAUSSIAN_OPTIONS` from a policy's ``kwargs``, raising ``ValueError`` (naming
    ``owner``) for a value other than SB3's defaults (``None`` / ``False`` / ``0.0``), which is
    what ``load`` passes back."""
    for key in GAUSSIAN_OPTIONS:
        value = kwargs.pop(key, None)
        if value not in (None, False, 0.0):
            raise ValueError(f"{key}={value!r} is a Gaussian-policy option; {owner} does not support it")


def apply_orthogonal_init(policy: ActorCriticPolicy, extra_gains: dict[nn.Module, float] | None = None) -> None:
    """SB3's orthogonal initialisation of ``ActorCriticPolicy._build``, for policies that replace
    ``_build``: gain sqrt(2) for the features extractor(s) and the MLP extractor, 0.01 for
    ``action_net`` and 1 for ``value_net``, plus ``extra_gains`` for modules SB3 does not know.
    Does nothing when ``policy.ortho_init`` is False (SB3's switch)."""
    if not policy.ortho_init:
        return
    # SB3's order (the draws come from the global RNG, so the order fixes the weights of a seed)
    module_gains = {policy.mlp_extractor: np.sqrt(2), **(extra_gains or {}), policy.action_net: 0.01, policy.value_net: 1}
    if policy.share_features_extractor:
        module_gains[policy.features_extractor] = np.sqrt(2)
    else:
        module_gains[policy.pi_features_extractor] = np.sqrt(2)
        module_gains[policy.vf_features_extractor] = np.sqrt(2)
    for module, gain in module_gains.items():
        module.apply(partial(policy.init_weights, gain=gain))


def check_action_space(action_space: spaces.Space, owner: str = "this policy") -> int:
    """Return D for a flat ``Box`` with finite bounds; raise ``ValueError`` naming ``owner`` and the problem otherwise."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"{owner} needs a Box action space, got {action_space}")
    if len(action_space.shape) != 1:
        raise ValueError(f"{owner} needs a flat (1-D) Box action space, got shape {action_space.shape}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"{owner} needs finite action bounds (the density lives on a box), got {action_space}")
    if np.any(action_space.high <= action_space.low):
        raise ValueError(f"action space has empty bounds (high <= low): {action_space}")
    return int(action_space.shape[0])


class CustomHeadPolicyMixin:
    """What an SB3 actor-critic policy with the action distribution ``head_distribution`` adds to
    SB3's ``ActorCriticPolicy`` (or sb3-contrib's ``RecurrentActorCriticPolicy``), listed before it
    in the bases: the options (``__init__``), the head (``_build``), the distribution
    (``_get_action_dist_from_latent``) and the ``save``/``load`` record (``_get_constructor_parameters``).

    ``head_distribution(action_dim, **options)`` is a :class:`~mepoly_dist.sb3.distributions.HeadDistribution`
    over ``[-1, 1]^D``: its ``proba_distribution_net(latent_dim)`` builds the ``action_net`` and its
    ``proba_distribution`` takes what ``action_net`` returns.  A subclass sets the class
    attribute and may override :meth:`_init_action_net` (called after SB3's initialisation).
    """

    #: the SB3 distribution class of the action head
    head_distribution: ClassVar[type[HeadDistribution]]
    action_dist: HeadDistribution

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, *args, **kwargs):
        owner = type(self).__name__
        check_action_space(action_space, owner)
        pop_gaussian_options(kwargs, owner)
        if args:
            raise TypeError(f"{owner} takes its options as keyword arguments (policy_kwargs)")
        options = list(inspect.signature(self.head_distribution).parameters)[1:]  # after action_dim
        self._head_options = {key: kwargs.pop(key) for key in options if key in kwargs}
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        # SB3 then unscales [-1, 1] actions to the env's bounds in rollouts and predict()
        self._squash_output = True

    def _build(self, lr_schedule: Schedule) -> None:
        """``ActorCriticPolicy._build`` with ``head_distribution``'s net as ``action_net``: same
        MLP extractor, orthogonal init gains and optimizer construction as SB3."""
        self.action_dist = self.head_distribution(int(self.action_space.shape[0]), **self._head_options)
        self._build_mlp_extractor()
        self.action_net = self.action_dist.proba_distribution_net(latent_dim=self.mlp_extractor.latent_dim_pi)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        apply_orthogonal_init(self)
        self._init_action_net()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _init_action_net(self) -> None:
        """Adjust ``action_net`` after SB3's initialisation (nothing by default)."""

    def _get_action_dist_from_latent(self, latent_pi: Tensor, *args) -> HeadDistribution:
        return self.action_dist.proba_distribution(self.action_net(latent_pi))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in GAUSSIAN_OPTIONS:
            data.pop(key, None)
        data.update(self._head_options)
        return data


class MePolyActorCriticPolicy(CustomHeadPolicyMixin, ActorCriticPolicy):
    r"""Actor-critic policy whose actor is a MePoly density over the (scaled) action box
    (:class:`~mepoly_dist.sb3.MePolyDistribution`; ``action_net`` is a :class:`~mepoly_dist.MePolyHead`).

    Example::

        >>> from stable_baselines3 import PPO
        >>> policy = PPO(MePolyActorCriticPolicy, "Pendulum-v1", policy_kwargs=dict(order=6)).policy
        >>> type(policy.action_net).__name__, policy.family.num_params
        ('MePolyHead', 7)
    """

    head_distribution = MePolyDistribution
    action_dist: MePolyDistribution

    @property
    def family(self):
        """The :class:`~mepoly_dist.MePolyFamily` (or :class:`~mepoly_dist.BlockMePolyFamily`) of the action head."""
        return self.action_dist.family
