"""mepoly_maniskill: ManiSkill 3 integration of mepoly-dist (SB3 VecEnvs, demonstrations, dataset, evaluation).

Its own distribution, ``mepoly-maniskill`` (``pip install -e integrations/maniskill``), which
declares the ``maniskill/<TaskId>`` environments of ``mepoly train`` (:mod:`.tasks`); the core package :mod:`mepoly_dist` never
imports ManiSkill, and neither does importing this package: ManiSkill is imported by the modules
that need it (:mod:`.vec_env`, :mod:`.evaluation`, :mod:`.install_check`, :mod:`.demos`,
:mod:`.pusht_expert`) when they run.

``mepoly_maniskill.make_vec_env(env_id, n_envs, **env_kwargs)`` is :func:`mepoly_maniskill.vec_env.make_vec_env`.
"""

__all__ = ["make_vec_env"]
__version__ = "0.1.0"


def __getattr__(name):
    if name == "make_vec_env":
        from .vec_env import make_vec_env

        return make_vec_env
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
