"""The RL application around the MePoly distribution, in the spirit of rl-zoo3: the paper's
environments (:mod:`~mepoly_dist.zoo.envs`), its baselines (:mod:`~mepoly_dist.zoo.baselines`),
MaxEnt PPO and the learned entropy coefficient, training runs with presets and the ``mepoly``
command (:mod:`~mepoly_dist.zoo.train`, :mod:`~mepoly_dist.zoo.cli`), metrics, rollouts and plots.

It depends on the SB3 adapter (:mod:`mepoly_dist.sb3`), which depends on the core
(:mod:`mepoly_dist`); nothing below imports it.  Installed by the ``[rl]`` extra.
"""

from .entropy_target import EntropyTarget
from .maxent import MaxEntPPO

__all__ = ["EntropyTarget", "MaxEntPPO"]
