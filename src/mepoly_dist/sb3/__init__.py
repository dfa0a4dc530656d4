"""Stable-Baselines3 adapter: MePoly action distributions and actor-critic policies.

>>> from stable_baselines3 import PPO
>>> from mepoly_dist.sb3 import MePolyActorCriticPolicy
>>> model = PPO(MePolyActorCriticPolicy, "Pendulum-v1", policy_kwargs=dict(order=8))  # doctest: +SKIP
"""

from .callbacks import MePolyDiagnostics
from .distributions import HeadDistribution, MePolyDistribution
from .policies import CustomHeadPolicyMixin, MePolyActorCriticPolicy, apply_orthogonal_init, check_action_space

__all__ = [
    "MePolyActorCriticPolicy",
    "MePolyDistribution",
    "HeadDistribution",
    "CustomHeadPolicyMixin",
    "MePolyDiagnostics",
    "apply_orthogonal_init",
    "check_action_space",
    "MePolyRecurrentActorCriticPolicy",
]


def __getattr__(name):
    # sb3-contrib is imported only when the recurrent policy is asked for
    if name == "MePolyRecurrentActorCriticPolicy":
        from .recurrent import MePolyRecurrentActorCriticPolicy

        return MePolyRecurrentActorCriticPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
