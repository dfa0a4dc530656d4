"""The RL application around the MePoly distribution, in the spirit of rl-zoo3: the paper's
environments (:mod:`~mepoly_dist.zoo.envs`), its baselines (:mod:`~mepoly_dist.zoo.baselines`),
MaxEnt PPO and the learned entropy coefficient, training runs with presets and the ``mepoly``
command (:mod:`~mepoly_dist.zoo.train`, :mod:`~mepoly_dist.zoo.cli`), metrics, rollouts and plots.

It depends on the SB3 adapter (:mod:`mepoly_dist.sb3`), which depends on the core
(:mod:`mepoly_dist`); nothing below imports it.  Installed by the ``[rl]`` extra.  Importing the
package itself loads nothing else, so that ``mepoly`` can say what is missing when the extra is not
installed; ``EntropyTarget`` and ``MaxEntPPO`` load on first use.
"""

__all__ = ["EntropyTarget", "MaxEntPPO"]


def __getattr__(name):
    if name == "EntropyTarget":
        from .entropy_target import EntropyTarget

        return EntropyTarget
    if name == "MaxEntPPO":
        from .maxent import MaxEntPPO

        return MaxEntPPO
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
