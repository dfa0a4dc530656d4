r"""The manifold bandit: a one-step contextual bandit rewarding closeness to a 2-D point cloud (paper section 5.2).

Each episode is a single step from a constant dummy observation :math:`s_0 = 0`.  The action
:math:`a \in [-1, 1]^2` earns the manifold reward of eq. 15,

.. math::

    r(a) = \exp\!\left(-\frac{d(a)^2}{2\sigma^2}\right), \qquad d(a) = \min_i \lVert a - x_i \rVert_2,

with :math:`\{x_i\}` the target point cloud (:func:`mepoly_dist.zoo.targets.target_points`:
lemniscate or two moons, or any ``(N, 2)`` array inside the square) and :math:`\sigma = 0.1`.
The nearest-point distance comes from one ``scipy.spatial.cKDTree`` built when the
environment is created.  Under the MaxEnt objective with temperature :math:`\alpha` the optimal
policy is the Boltzmann density :math:`\propto \exp(r(a)/\alpha)`.

Actions are not clipped: an action outside :math:`[-1, 1]^2` (by more than ``1e-6``), NaN,
infinite or of the wrong shape raises ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from scipy.spatial import cKDTree

from ..targets import SIGMA, target_points
from .core import BatchedCore, CoreEnv, core_attribute, draw_disc

__all__ = ["BanditCore", "BanditEnv", "ACTION_TOLERANCE", "heat_colors"]

#: how far outside ``[-1, 1]^2`` an action may lie (float32 round-off) before it is rejected
ACTION_TOLERANCE = 1e-6
IMAGE_SIZE = 256
ACTION_COLOR = (255, 255, 255)
# a viridis-like ramp (dark blue -> teal -> yellow), interpolated linearly
_HEAT_ANCHORS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float64)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map values in ``[0, 1]`` to uint8 RGB colours of a viridis-like ramp (``values.shape + (3,)``)."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(_HEAT_ANCHORS))
    channels = [np.interp(values, stops, _HEAT_ANCHORS[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


def _target_cloud(target, target_seed: int) -> np.ndarray:
    if isinstance(target, str):
        return target_points(target, seed=target_seed)
    try:
        points = np.array(target, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"target must be a name or an (N, 2) array of points, got {type(target).__name__}") from None
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"a target point array must have shape (N, 2) with N >= 1, got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("target points contain NaN or infinite values")
    if (np.abs(points) > 1.0).any():
        raise ValueError(f"target points must lie inside the action square [-1, 1]^2; the largest |coordinate| is {np.abs(points).max():.4g}")
    return points


class BanditCore(BatchedCore):
    """``num_envs`` copies of the manifold bandit sharing one target and one KD-tree.

    Arguments: see :class:`BanditEnv`.
    """

    def __init__(self, num_envs: int = 1, target="lemniscate", sigma: float = SIGMA, target_seed: int = 0):
        super().__init__(num_envs)
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        self.target = target if isinstance(target, str) else "custom"
        self.points = _target_cloud(target, target_seed)
        self.points.flags.writeable = False
        self.sigma = float(sigma)
        self.tree = cKDTree(self.points)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.last_actions = np.full((self.num_envs, 2), np.nan)
        self._heat_map = None

    def reward(self, actions: np.ndarray) -> np.ndarray:
        """Eq. 15 at actions of shape ``(..., 2)``: ``exp(-d^2 / (2 sigma^2))``, ``d`` the nearest-point distance."""
        actions = np.asarray(actions, dtype=np.float64)
        distance, _ = self.tree.query(actions.reshape(-1, 2))
        return np.exp(-(distance**2) / (2.0 * self.sigma**2)).reshape(actions.shape[:-1])

    def _check_action_values(self, actions):
        outside = (np.abs(actions) > 1.0 + ACTION_TOLERANCE).any(axis=1)
        if outside.any():
            bad = np.flatnonzero(outside)
            raise ValueError(
                f"bandit actions must lie in [-1, 1]^2 (tolerance {ACTION_TOLERANCE:g}); environments {bad.tolist()[:8]} "
                f"got e.g. {actions[bad[0]].tolist()}"
            )

    def _reset(self, indices, rngs, options):
        pass  # the state is the constant observation; the last action stays for rendering

    def _step(self, actions):
        self.last_actions = actions.copy()
        rewards = self.reward(actions)
        return rewards, np.ones(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)

    def observations(self) -> np.ndarray:
        return np.zeros((self.num_envs, 1), dtype=np.float32)

    def infos(self) -> list[dict[str, Any]]:
        return [{} for _ in range(self.num_envs)]

    def render(self, index: int) -> np.ndarray:
        """The reward field on ``[-1, 1]^2`` as a heat map (y up), the last action as a white dot."""
        if self._heat_map is None:
            centres = (np.arange(IMAGE_SIZE) + 0.5) / IMAGE_SIZE * 2.0 - 1.0
            x, y = np.meshgrid(centres, centres[::-1])  # image row 0 is y = +1
            self._heat_map = heat_colors(self.reward(np.stack([x, y], axis=-1)))
        image = self._heat_map.copy()
        ax, ay = self.last_actions[index]
        if np.isfinite(ax):
            draw_disc(image, (1.0 - ay) / 2.0 * IMAGE_SIZE, (ax + 1.0) / 2.0 * IMAGE_SIZE, IMAGE_SIZE / 80, ACTION_COLOR)
        return image


class BanditEnv(CoreEnv):
    r"""The one-step manifold bandit of section 5.2 as a gymnasium environment.

    Arguments:
        target: ``"lemniscate"``, ``"two_moons"`` (:data:`mepoly_dist.zoo.targets.TARGETS`) or an
            ``(N, 2)`` array of finite points inside ``[-1, 1]^2``.
        sigma: width :math:`\sigma` of the reward kernel (eq. 15).
        target_seed: seed of the named target's point cloud (unused for a point array).
        render_mode: None or ``"rgb_array"`` (256 x 256 uint8 heat map of the reward).

    The observation is always ``zeros(1)``; every episode terminates after one step.

    Example:
        >>> env = BanditEnv("lemniscate")
        >>> obs, _ = env.reset(seed=0)
        >>> _, reward, terminated, truncated, _ = env.step(env.points[0])
        >>> reward, terminated, truncated
        (1.0, True, False)
    """

    def __init__(self, target="lemniscate", sigma: float = SIGMA, target_seed: int = 0, render_mode: str | None = None):
        super().__init__(BanditCore(1, target, sigma, target_seed), render_mode)

    points = core_attribute("points", "The ``(N, 2)`` target point cloud (read-only).")
    sigma = core_attribute("sigma", "Width of the reward kernel.")
    target = core_attribute("target", "The target's name (``'custom'`` for a point array).")

    def reward(self, actions) -> np.ndarray:
        """Eq. 15 at any ``(..., 2)`` array of actions (no episode bookkeeping)."""
        return self.core.reward(actions)
