"""The paper's environments, Smooth World (section 5.1) and the manifold bandit (section 5.2), registered with gymnasium on import."""

from __future__ import annotations

import gymnasium as gym

__all__ = ["BANDIT_ID", "SMOOTH_WORLD_ID", "register_envs", "make_vec_env"]

BANDIT_ID = "mepoly/Bandit-v0"
SMOOTH_WORLD_ID = "mepoly/SmoothWorld-v0"

_ENTRY_POINTS = {
    BANDIT_ID: "mepoly_dist.zoo.envs.bandit:BanditEnv",
    SMOOTH_WORLD_ID: "mepoly_dist.zoo.envs.smooth_world:SmoothWorldEnv",
}


def register_envs() -> None:
    """Register the ``mepoly/*`` ids with gymnasium; ids already in the registry are left alone, so importing twice is silent.

    * ``mepoly/Bandit-v0`` (:class:`~mepoly_dist.zoo.envs.bandit.BanditEnv`): every episode is one
      step and terminates, so no ``max_episode_steps``.
    * ``mepoly/SmoothWorld-v0`` (:class:`~mepoly_dist.zoo.envs.smooth_world.SmoothWorldEnv`): the
      environment truncates itself after its ``max_steps`` constructor argument (default 256),
      so ``gym.make(..., max_steps=...)`` and the batched VecEnv share one episode length; no
      gymnasium ``TimeLimit`` is added on top (``max_episode_steps`` is left unset).

    :func:`make_vec_env` (:mod:`~mepoly_dist.zoo.envs.vector`, loaded on first use because it
    imports stable-baselines3) builds the batched numpy VecEnv of these ids.
    """
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


register_envs()


def __getattr__(name):
    # make_vec_env lives in vector.py, which imports stable-baselines3: load it on first use
    if name == "make_vec_env":
        from .vector import make_vec_env

        return make_vec_env
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
