r"""``MePolyActorCriticPolicy``: SB3's actor-critic policy with a MePoly action head.

``PPO(MePolyActorCriticPolicy, env, policy_kwargs=dict(order=14))`` trains with stock
Stable-Baselines3 (PPO, A2C) and sb3-contrib (TRPO, through the registered exact KL).
The policy network predicts the natural parameters :math:`\lambda(s)` of a MePoly density on
:math:`[-1, 1]^D` (paper section 4.1); PPO's clipped objective (eq. 11) uses its exact
``log_prob`` and the entropy bonus (eq. 12) its exact entropy.

Action scaling follows SB3's squashed-policy convention: the policy reports
``squash_output = True``, so SB3 stores the raw actions in ``[-1, 1]^D`` in its rollout buffer
and maps them to the environment's bounds with ``unscale_action``
(:math:`a_{env} = low + (a + 1)(high - low)/2`) for ``env.step`` and ``predict``; nothing is
clipped.  This needs a flat ``Box`` action space with finite bounds.

``policy_kwargs`` keys of this policy, stored by ``save`` so that ``load`` rebuilds it:
``order`` (14), ``basis`` (``"legendre"``), ``quadrature`` (a rule spec string, default per
dimension), ``lambda_clip`` (``None``), ``validate_args`` (``None``: torch's default), ``blocks``
(``None``: one joint density; block sizes: a product of MePoly blocks, :class:`~mepoly_dist.BlockMePoly`).  All
other keys are SB3's (``net_arch``, ``activation_fn``, ``ortho_init``, ...); the Gaussian-only
ones (``use_sde``, ``log_std_init``, ``full_std``, ``use_expln``, ``squash_output``) are rejected.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor, nn

from .distributions import MePolyDistribution

__all__ = ["MePolyActorCriticPolicy", "MePolyPolicyMixin", "apply_orthogonal_init", "check_action_space"]

#: ActorCriticPolicy arguments that only make sense for Gaussian / gSDE heads
_GAUSSIAN_ONLY = ("use_sde", "log_std_init", "full_std", "use_expln", "squash_output")


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


def check_action_space(action_space: spaces.Space) -> int:
    """Return D for a flat ``Box`` with finite bounds; raise ``ValueError`` naming the problem otherwise."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"MePoly policies need a Box action space, got {action_space}")
    if len(action_space.shape) != 1:
        raise ValueError(f"MePoly policies need a flat (1-D) Box action space, got shape {action_space.shape}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"MePoly policies need finite action bounds (the density lives on a box), got {action_space}")
    if np.any(action_space.high <= action_space.low):
        raise ValueError(f"action space has empty bounds (high <= low): {action_space}")
    return int(action_space.shape[0])


class MePolyPolicyMixin:
    """The MePoly parts of an SB3 actor-critic policy, shared by the feed-forward and the
    recurrent policy: the head (``_build``), the distribution (``_get_action_dist_from_latent``)
    and the ``save``/``load`` record (``_get_constructor_parameters``)."""

    action_dist: MePolyDistribution

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args,
        order: int = 14,
        basis: str = "legendre",
        quadrature: str | None = None,
        lambda_clip: float | None = None,
        validate_args: bool | None = None,
        blocks=None,
        **kwargs,
    ):
        check_action_space(action_space)
        for key in _GAUSSIAN_ONLY:
            # ``load`` passes back SB3's defaults (None / False / 0.0); anything else is a mistake
            value = kwargs.pop(key, None)
            if value not in (None, False, 0.0):
                raise ValueError(f"{key}={value!r} is a Gaussian-policy option; MePoly policies do not support it")
        if args:
            raise TypeError("MePoly policies take their options as keyword arguments (policy_kwargs)")
        self._mepoly_kwargs = dict(order=order, basis=basis, quadrature=quadrature, lambda_clip=lambda_clip, validate_args=validate_args,
                                  blocks=list(blocks) if isinstance(blocks, (list, tuple)) else blocks)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        # SB3 then unscales [-1, 1] actions to the env's bounds in rollouts and predict()
        self._squash_output = True

    def _build(self, lr_schedule: Schedule) -> None:
        """``ActorCriticPolicy._build`` with a :class:`~mepoly_dist.sb3.MePolyHead` as ``action_net``:
        same MLP extractor, orthogonal init gains and optimizer construction as SB3."""
        self.action_dist = MePolyDistribution(int(self.action_space.shape[0]), **self._mepoly_kwargs)
        self._build_mlp_extractor()
        self.action_net = self.action_dist.proba_distribution_net(latent_dim=self.mlp_extractor.latent_dim_pi)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        apply_orthogonal_init(self)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: Tensor, *args) -> MePolyDistribution:
        return self.action_dist.proba_distribution(self.action_net(latent_pi))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in _GAUSSIAN_ONLY:
            data.pop(key, None)
        quadrature = self._mepoly_kwargs["quadrature"]
        if quadrature is not None and not isinstance(quadrature, str):
            quadrature = quadrature.spec  # a QuadratureRule object: store its spec string
        data.update(self._mepoly_kwargs, quadrature=quadrature)
        return data

    @property
    def family(self):
        """The :class:`~mepoly_dist.MePolyFamily` of the action head."""
        return self.action_dist.family


class MePolyActorCriticPolicy(MePolyPolicyMixin, ActorCriticPolicy):
    r"""Actor-critic policy whose actor is a MePoly density over the (scaled) action box.

    Example::

        >>> from stable_baselines3 import PPO
        >>> model = PPO(MePolyActorCriticPolicy, "Pendulum-v1", n_steps=64, batch_size=64,
        ...             policy_kwargs=dict(order=6))
        >>> model.policy.family.num_params
        7
    """
