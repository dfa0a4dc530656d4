"""The RL baselines beside MePoly, on Stable-Baselines3: the paper's PPO-GMM and FPO, and PPO-NSF (a normalizing flow).

>>> from stable_baselines3 import PPO
>>> from mepoly_dist.zoo.baselines import FPO, GMMActorCriticPolicy
>>> gmm = PPO(GMMActorCriticPolicy, "Pendulum-v1", policy_kwargs=dict(n_components=4))  # doctest: +SKIP
>>> fpo = FPO("MlpPolicy", "Pendulum-v1", num_fpo_samples=50).learn(10_000)  # doctest: +SKIP

``NSFActorCriticPolicy`` (a neural spline flow from zuko, squashed onto the action box) is the
expressive-density peer a researcher would reach for; PPO-Gaussian, the remaining baseline, is stock SB3 (``PPO("MlpPolicy", env)``).
"""

from .fpo import FPO, FPOPolicy, FPORolloutBuffer
from .flow import NSFActorCriticPolicy, NSFDistribution, NSFHead
from .gmm import GMMActorCriticPolicy, GMMDistribution, GMMHead

__all__ = ["GMMActorCriticPolicy", "GMMDistribution", "GMMHead", "NSFActorCriticPolicy", "NSFDistribution", "NSFHead", "FPO", "FPOPolicy", "FPORolloutBuffer"]
