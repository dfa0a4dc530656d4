"""Batched SB3 VecEnvs on the numpy cores of Smooth World and the bandit, and ``make_vec_env``.

:class:`BatchedVecEnv` steps all ``num_envs`` copies of a
:class:`~mepoly_dist.zoo.envs.core.BatchedCore` with one vectorized numpy call instead of a
python loop over gymnasium environments, and otherwise behaves like SB3's ``DummyVecEnv``
of the single environment:

* ``reset()`` returns the observations only, and uses then forgets the seeds of
  :meth:`seed` (env ``i`` gets ``seed + i``) and the options of :meth:`set_options`;
* ``step_wait()`` returns ``(obs, rewards float32, dones bool, infos)``; a finished episode
  is reset at once (with a new random start, no options), its last observation kept in
  ``infos[i]["terminal_observation"]``; ``infos[i]["TimeLimit.truncated"]`` is
  ``truncated and not terminated``;
* each environment has its own ``numpy.random.Generator``, created from its seed exactly
  as gymnasium's ``Env.reset(seed=...)`` does, so a batched env and a ``DummyVecEnv`` of
  single envs with the same seeds and actions produce identical episodes.

There are no per-environment objects: ``get_attr`` returns the core's (shared) attribute
once per index, ``set_attr`` raises (the parameters are fixed at construction), and
``env_method`` supports ``render`` only; the per-environment state is in ``venv.core``
(e.g. ``venv.core.positions`` for Smooth World).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn, tile_images

from . import BANDIT_ID, SMOOTH_WORLD_ID
from .bandit import BanditCore
from .core import BatchedCore, check_render_mode
from .layouts import Layout
from .smooth_world import SmoothWorldCore

__all__ = ["BatchedVecEnv", "SmoothWorldVecEnv", "BanditVecEnv", "make_vec_env", "MAX_RENDER_TILES"]

#: ``render()`` tiles at most this many environments (the first ones)
MAX_RENDER_TILES = 16


class BatchedVecEnv(VecEnv):
    """An SB3 ``VecEnv`` running the ``num_envs`` copies of a :class:`BatchedCore` in one numpy step.

    Arguments:
        core: the batched core (its ``num_envs`` is the VecEnv's).
        render_mode: None or ``"rgb_array"``.
    """

    def __init__(self, core: BatchedCore, render_mode: str | None = None):
        self.core = core
        self.render_mode = check_render_mode(render_mode)
        self.spec = None  # the gymnasium EnvSpec when built by make_vec_env (VecMonitor logs its id)
        self._rngs: list[np.random.Generator | None] = [None] * core.num_envs
        self._actions = None
        super().__init__(core.num_envs, core.observation_space, core.action_space)

    # -- the VecEnv protocol ----------------------------------------------------------------
    def reset(self) -> np.ndarray:
        for i, seed in enumerate(self._seeds):
            if seed is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seed)
        indices = np.arange(self.num_envs)
        self.core.reset(indices, self._rngs, self._options)
        self.reset_infos = self.core.reset_infos(indices)
        self._reset_seeds()
        self._reset_options()
        return self.core.observations()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        actions, self._actions = self._actions, None
        rewards, terminated, truncated = self.core.step(actions)
        dones = terminated | truncated
        observations = self.core.observations()
        infos = self.core.infos()
        time_limit = (truncated & ~terminated).tolist()
        for info, flag in zip(infos, time_limit):
            info["TimeLimit.truncated"] = flag
        finished = np.flatnonzero(dones).tolist()
        if finished:
            for i, terminal_observation in zip(finished, observations[finished]):
                infos[i]["terminal_observation"] = terminal_observation
            self.core.reset(finished, [self._rngs[i] for i in finished])
            for i, info in zip(finished, self.core.reset_infos(finished)):
                self.reset_infos[i] = info
            observations = self.core.observations()
        return observations, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        pass

    # -- attributes and methods -------------------------------------------------------------
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The core's attribute ``attr_name`` (shared by all environments), once per index."""
        count = len(list(self._get_indices(indices)))
        if attr_name in ("render_mode", "spec"):
            value = getattr(self, attr_name)
        elif not attr_name.startswith("_") and hasattr(self.core, attr_name):
            value = getattr(self.core, attr_name)
        else:
            raise AttributeError(f"{type(self.core).__name__} has no attribute {attr_name!r}")
        return [value] * count

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(
            f"cannot set {attr_name!r}: the environments of a {type(self).__name__} share their parameters, "
            "which are fixed at construction; build a new VecEnv instead"
        )

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if method_name == "render":
            return [self.core.render(i) for i in self._get_indices(indices)]
        raise AttributeError(f"{type(self).__name__} has no per-environment objects; env_method supports 'render' only, not {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    # -- rendering ----------------------------------------------------------------------------
    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(f"The render mode is {self.render_mode}, but get_images() needs 'rgb_array'.")
            return [None] * self.num_envs
        return [self.core.render(i) for i in range(self.num_envs)]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """The first ``MAX_RENDER_TILES`` environments' pictures tiled into one image (``rgb_array`` mode)."""
        mode = mode or self.render_mode
        if mode != "rgb_array" or self.render_mode != "rgb_array":
            warnings.warn(f"render() needs render_mode='rgb_array' at construction (got {self.render_mode!r}, asked {mode!r})")
            return None
        return tile_images([self.core.render(i) for i in range(min(self.num_envs, MAX_RENDER_TILES))])


class SmoothWorldVecEnv(BatchedVecEnv):
    """``num_envs`` Smooth World environments in one batched VecEnv (arguments as :class:`~mepoly_dist.zoo.envs.smooth_world.SmoothWorldEnv`)."""

    def __init__(
        self,
        num_envs: int = 1,
        layout: str | Layout = "four_walls",
        max_steps: int = 256,
        dt: float = 0.25,
        max_speed: float = 1.0,
        render_mode: str | None = None,
    ):
        super().__init__(SmoothWorldCore(num_envs, layout, max_steps, dt, max_speed), render_mode)


class BanditVecEnv(BatchedVecEnv):
    """``num_envs`` manifold bandits in one batched VecEnv (arguments as :class:`~mepoly_dist.zoo.envs.bandit.BanditEnv`)."""

    def __init__(self, num_envs: int = 1, target="lemniscate", sigma: float = 0.1, target_seed: int = 0, render_mode: str | None = None):
        super().__init__(BanditCore(num_envs, target, sigma, target_seed), render_mode)


_BATCHED = {SMOOTH_WORLD_ID: SmoothWorldVecEnv, BANDIT_ID: BanditVecEnv}


def make_vec_env(env_id: str, n_envs: int = 1, seed: int | None = None, vectorized: bool = True, monitor: bool = True, **env_kwargs) -> VecEnv:
    """A VecEnv of ``n_envs`` copies of ``env_id``, seeded for its first ``reset`` like SB3's ``make_vec_env``.

    * ``mepoly/SmoothWorld-v0`` and ``mepoly/Bandit-v0`` with ``vectorized=True``: the batched
      numpy VecEnv (:class:`SmoothWorldVecEnv`, :class:`BanditVecEnv`), wrapped in SB3's
      ``VecMonitor`` when ``monitor`` (so ``rollout/ep_rew_mean`` is logged);
    * any other id, or ``vectorized=False``: a ``DummyVecEnv`` of ``gym.make(env_id, **env_kwargs)``
      -- SB3's own ``make_vec_env`` (each env ``Monitor``-wrapped) when ``monitor``, the bare
      envs otherwise -- e.g. to compare against the batched env.

    With a ``seed``, environment ``i`` is reset with ``seed + i`` and the action space is seeded
    (SB3's convention); ``env_kwargs`` go to the environment's constructor.
    """
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    if vectorized and env_id in _BATCHED:
        venv = _BATCHED[env_id](n_envs, **env_kwargs)
        venv.spec = gym.spec(env_id)
        venv.seed(seed)
        if seed is not None:
            venv.action_space.seed(seed)
        return VecMonitor(venv) if monitor else venv
    if monitor:
        return sb3_make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)

    def make(rank):
        def _init():
            env = gym.make(env_id, **env_kwargs)
            if seed is not None:
                env.action_space.seed(seed + rank)
            return env

        return _init

    venv = DummyVecEnv([make(rank) for rank in range(n_envs)])
    venv.seed(seed)
    return venv
