"""Batched numpy environment cores and the gymnasium adapter that runs one copy of a core.

A :class:`BatchedCore` holds the state of ``num_envs`` copies of an environment as numpy
arrays and advances all of them with one vectorized ``step``.  The same core serves

* the single gymnasium environment (:class:`CoreEnv`, a core with ``num_envs = 1``), and
* the batched SB3 VecEnv (:class:`mepoly_dist.zoo.envs.vector.BatchedVecEnv`),

so the dynamics exist once.  Randomness is explicit: ``reset`` receives one
``numpy.random.Generator`` per environment it resets (the single env's ``np_random``, or the
VecEnv's per-env generators seeded like SB3's ``DummyVecEnv``), so a batched env and a
``DummyVecEnv`` of single envs with the same seeds produce the same episodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["BatchedCore", "CoreEnv", "RENDER_MODES", "check_render_mode", "draw_disc", "core_attribute"]

RENDER_MODES = ("rgb_array",)


def check_render_mode(render_mode: str | None) -> str | None:
    """``render_mode`` if it is None or one of :data:`RENDER_MODES`, else ``ValueError``."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"unsupported render_mode {render_mode!r}; expected None or one of {list(RENDER_MODES)}")
    return render_mode


def draw_disc(image: np.ndarray, row: float, col: float, radius: float, color) -> np.ndarray:
    """Paint a filled disc centred at pixel coordinates ``(row, col)`` into an ``H x W x 3`` image, in place."""
    height, width = image.shape[:2]
    r0, r1 = max(int(np.floor(row - radius)), 0), min(int(np.ceil(row + radius)) + 1, height)
    c0, c1 = max(int(np.floor(col - radius)), 0), min(int(np.ceil(col + radius)) + 1, width)
    if r0 >= r1 or c0 >= c1:
        return image
    rows, cols = np.ogrid[r0:r1, c0:c1]
    inside = (rows + 0.5 - row) ** 2 + (cols + 0.5 - col) ** 2 <= radius**2
    image[r0:r1, c0:c1][inside] = color
    return image


class BatchedCore(ABC):
    """State and vectorized dynamics of ``num_envs`` copies of an environment.

    Subclasses define ``observation_space`` and ``action_space`` (of one copy) and implement
    :meth:`_reset`, :meth:`_step`, :meth:`observations`, :meth:`infos` and :meth:`render`;
    they may tighten :meth:`_check_action_values`.  The public :meth:`reset` / :meth:`step`
    validate their inputs and then call those.
    """

    observation_space: spaces.Box
    action_space: spaces.Box
    #: the keys ``reset`` accepts in ``options``
    reset_option_keys: tuple[str, ...] = ()

    def __init__(self, num_envs: int):
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.needs_reset = np.ones(self.num_envs, dtype=bool)

    # -- episodes -----------------------------------------------------------------------------
    def reset(self, indices, rngs: Sequence[np.random.Generator], options: Sequence[dict | None] | None = None) -> None:
        """Start new episodes in the environments ``indices``.

        ``rngs[k]`` and ``options[k]`` belong to environment ``indices[k]``; ``options=None``
        means no options for any of them.  Unknown option keys raise ``ValueError``.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(rngs) != len(indices) or (options is not None and len(options) != len(indices)):
            raise ValueError(f"reset got {len(indices)} indices, {len(rngs)} generators and {len(options or ())} option dicts")
        if options is not None:
            options = [dict(opts or {}) for opts in options]
            for opts in options:
                unknown = sorted(set(opts) - set(self.reset_option_keys))
                if unknown:
                    raise ValueError(f"unknown reset option(s) {unknown}; {type(self).__name__} accepts {list(self.reset_option_keys) or 'none'}")
        self._reset(indices, list(rngs), options)
        self.needs_reset[indices] = False

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance every environment by one step with ``actions`` of shape ``(num_envs, *action_shape)``.

        Returns float64 rewards and boolean ``terminated`` and ``truncated`` arrays of shape
        ``(num_envs,)``.  Actions of the wrong shape or with NaN/inf entries raise ``ValueError``.
        """
        if self.needs_reset.any():
            raise RuntimeError(f"environments {np.flatnonzero(self.needs_reset).tolist()[:8]} must be reset before step()")
        return self._step(self.check_actions(actions))

    def check_actions(self, actions) -> np.ndarray:
        """``actions`` as a float64 ``(num_envs, *action_shape)`` array, or ``ValueError`` naming the problem."""
        try:
            actions = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"actions must be numeric arrays: {error}") from None
        expected = (self.num_envs, *self.action_space.shape)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape {expected}, got {actions.shape}")
        finite = np.isfinite(actions).reshape(self.num_envs, -1).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(f"actions contain NaN or infinite values (environments {bad.tolist()[:8]}: {actions[bad[0]].tolist()})")
        self._check_action_values(actions)
        return actions

    def _check_action_values(self, actions: np.ndarray) -> None:
        """Hook for environment-specific action checks (finite, correctly shaped actions)."""

    @abstractmethod
    def _reset(self, indices: np.ndarray, rngs: list, options: list[dict] | None) -> None:
        """Set the state of the environments ``indices`` to new initial states."""

    @abstractmethod
    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance all environments with validated float64 actions; return rewards, terminated, truncated."""

    # -- outputs ------------------------------------------------------------------------------
    @abstractmethod
    def observations(self) -> np.ndarray:
        """The current observations, ``(num_envs, *observation_shape)``, in the observation space's dtype."""

    @abstractmethod
    def infos(self) -> list[dict[str, Any]]:
        """One fresh info dict per environment, describing the last step."""

    def reset_infos(self, indices) -> list[dict[str, Any]]:
        """One info dict per environment in ``indices``, describing its initial state (default: empty)."""
        return [{} for _ in np.asarray(indices).reshape(-1)]

    @abstractmethod
    def render(self, index: int) -> np.ndarray:
        """An ``H x W x 3`` uint8 picture of environment ``index``."""


class CoreEnv(gym.Env):
    """A gymnasium environment that runs a :class:`BatchedCore` with ``num_envs = 1``.

    ``reset(seed=..., options=...)`` seeds ``np_random`` (gymnasium's convention) and passes
    it and the options to the core; ``step`` checks that the action has the action space's
    shape and returns python ``float``/``bool`` values.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(self, core: BatchedCore, render_mode: str | None = None):
        if core.num_envs != 1:
            raise ValueError(f"CoreEnv runs a core with one environment, got num_envs={core.num_envs}")
        self.core = core
        self.observation_space = core.observation_space
        self.action_space = core.action_space
        self.render_mode = check_render_mode(render_mode)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"options must be a dict or None, got {type(options).__name__}")
        self.core.reset([0], [self.np_random], [options])
        return self.core.observations()[0], self.core.reset_infos([0])[0]

    def step(self, action):
        try:
            action = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"action must be a numeric array: {error}") from None
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {action.shape}")
        rewards, terminated, truncated = self.core.step(action[None])
        return self.core.observations()[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), self.core.infos()[0]

    def render(self):
        """The ``rgb_array`` picture (``H x W x 3`` uint8), or None when ``render_mode`` is None."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to the constructor")
            return None
        return self.core.render(0)


def core_attribute(name: str, doc: str) -> property:
    """A read-only property of a :class:`CoreEnv` subclass that reads ``self.core.<name>``."""
    return property(lambda self: getattr(self.core, name), doc=doc)
