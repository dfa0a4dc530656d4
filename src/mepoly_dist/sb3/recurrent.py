"""``MePolyRecurrentActorCriticPolicy``: sb3-contrib's LSTM actor-critic with a MePoly head.

``RecurrentPPO(MePolyRecurrentActorCriticPolicy, env)``.  Unlike SB3's ``PPO``, sb3-contrib's
``RecurrentPPO`` *clips* rollout actions to the action space instead of unscaling squashed
ones, so a MePoly action in ``[-1, 1]^D`` would be sent to the environment unchanged.  That
is only correct when the environment's bounds are exactly ``[-1, 1]^D``; this policy
therefore requires such an action space and raises ``ValueError`` otherwise, with the fix:
wrap the environment in ``gymnasium.wrappers.RescaleAction(env, -1.0, 1.0)``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

from .policies import MePolyActorCriticPolicy

__all__ = ["MePolyRecurrentActorCriticPolicy"]


class MePolyRecurrentActorCriticPolicy(MePolyActorCriticPolicy, RecurrentActorCriticPolicy):
    """LSTM actor-critic policy (sb3-contrib) whose actor is a MePoly density on ``[-1, 1]^D``:
    :class:`~mepoly_dist.sb3.MePolyActorCriticPolicy` on sb3-contrib's recurrent base (its
    ``policy_kwargs`` and the LSTM's: ``lstm_hidden_size``, ``n_lstm_layers``, ...)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule, *args, **kwargs):
        if isinstance(action_space, spaces.Box) and not (np.all(action_space.low == -1.0) and np.all(action_space.high == 1.0)):
            raise ValueError(
                "RecurrentPPO clips rollout actions instead of unscaling them, so a MePoly recurrent policy needs "
                f"action bounds [-1, 1]; got {action_space}. Wrap the env in gymnasium.wrappers.RescaleAction(env, -1.0, 1.0)."
            )
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
