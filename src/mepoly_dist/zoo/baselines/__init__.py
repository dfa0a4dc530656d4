"""The paper's RL baselines beside MePoly, on Stable-Baselines3: PPO-GMM and FPO.

>>> from stable_baselines3 import PPO
>>> from mepoly_dist.zoo.baselines import FPO, GMMActorCriticPolicy
>>> gmm = PPO(GMMActorCriticPolicy, "Pendulum-v1", policy_kwargs=dict(n_components=4))  # doctest: +SKIP
>>> fpo = FPO("MlpPolicy", "Pendulum-v1", num_fpo_samples=50).learn(10_000)  # doctest: +SKIP

PPO-Gaussian, the third baseline, is stock SB3 (``PPO("MlpPolicy", env)``).
"""

from .fpo import FPO, FPOPolicy, FPORolloutBuffer
from .gmm import GMMActorCriticPolicy, GMMDistribution, GMMHead

__all__ = ["GMMActorCriticPolicy", "GMMDistribution", "GMMHead", "FPO", "FPOPolicy", "FPORolloutBuffer"]
