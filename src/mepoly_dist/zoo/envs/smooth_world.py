r"""Smooth World: continuous 2-D navigation with sparse goal and death rewards (paper section 5.1).

The agent is a point :math:`p \in [0, S)^2` (world units, one per cell of the layout's
``S x S`` grid, :mod:`~mepoly_dist.zoo.envs.layouts`).  One step with action :math:`a \in \mathbb{R}^2`
(the paper's code semantics):

.. math::

    v = \operatorname{clip}(a, -1, 1)\, v_{\max}, \qquad
    p' = \operatorname{clip}(p + v\, \Delta t,\; 0,\; S - 10^{-6}),

with :math:`v_{\max} = 1` (``max_speed``) and :math:`\Delta t = 0.25` (``dt``).  Actions are
*clipped* to the action box, as in the paper's code, not rejected.  If :math:`p'` lies in a
wall cell the agent stays at :math:`p` (blocked).  The reward is read in the cell of the new
position: +20 in a goal cell and -10 in a death cell, both ending the episode
(``terminated``), 0 elsewhere.  The episode is ``truncated`` after ``max_steps`` (256) steps;
gymnasium's ``TimeLimit`` is not used (see :mod:`mepoly_dist.zoo.envs`).

Observation: :math:`(p - S/2) / (S/2) \in [-1, 1]^2`, float32.  Episodes start uniformly in a
uniformly chosen free cell (not wall, goal or death), or at ``options={"position": [x, y]}``.

``info`` after a step: ``"goal"`` (the goal region reached, -1 otherwise; see
:attr:`Layout.goal_labels`), ``"is_success"`` (a goal was reached, SB3's convention) and
``"position"`` (world units).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .core import BatchedCore, CoreEnv, core_attribute, draw_disc
from .layouts import DEATH, DEFAULT_LAYOUT, FREE, GOAL, KIND_NAMES, WALL, Layout, get_layout

__all__ = ["SmoothWorldCore", "SmoothWorldEnv", "layout_image", "GOAL_REWARD", "DEATH_REWARD", "LAYOUT_COLORS"]

GOAL_REWARD = 20.0
DEATH_REWARD = -10.0
#: the margin that keeps positions inside ``[0, size)`` (paper code: ``clip(p, 0, size - 1e-6)``)
EDGE_MARGIN = 1e-6
#: RGB colours of the cell kinds (free, wall, goal, death) and of the agent
LAYOUT_COLORS = {FREE: (245, 245, 245), WALL: (128, 128, 128), GOAL: (42, 157, 143), DEATH: (229, 57, 70)}
AGENT_COLOR = (25, 60, 170)
GRID_LINE_COLOR = (222, 222, 222)
PIXELS_PER_CELL = 10


def layout_image(layout: Layout) -> np.ndarray:
    """``(size, size, 3)`` uint8 colours of the cells, indexed ``[y, x]`` (row 0 is the bottom)."""
    palette = np.zeros((max(LAYOUT_COLORS) + 1, 3), dtype=np.uint8)
    for kind, color in LAYOUT_COLORS.items():
        palette[kind] = color
    return palette[layout.cell_kinds]


class SmoothWorldCore(BatchedCore):
    """``num_envs`` Smooth World agents on one layout: positions ``(num_envs, 2)`` in world units.

    Arguments: see :class:`SmoothWorldEnv`.
    """

    reset_option_keys = ("position",)

    def __init__(self, num_envs: int = 1, layout: str | Layout = DEFAULT_LAYOUT, max_steps: int = 256, dt: float = 0.25, max_speed: float = 1.0):
        super().__init__(num_envs)
        self.layout = get_layout(layout)
        if int(max_steps) != max_steps or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        for name, value in (("dt", dt), ("max_speed", max_speed)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        self.max_steps, self.dt, self.max_speed = int(max_steps), float(dt), float(max_speed)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.positions = np.full((self.num_envs, 2), np.nan)
        self.elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self.goals = np.full(self.num_envs, -1, dtype=np.int64)
        self._background = None

    # -- episodes -----------------------------------------------------------------------------
    def check_start(self, position) -> np.ndarray:
        """A start position as a float64 ``(2,)`` array, or ``ValueError`` if it is not in a free cell."""
        try:
            position = np.asarray(position, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"start position must be two numbers [x, y], got {position!r}") from None
        if position.shape != (2,) or not np.isfinite(position).all():
            raise ValueError(f"start position must be two finite numbers [x, y], got {position.tolist()}")
        layout = self.layout
        if not layout.contains(position):
            raise ValueError(f"start position {position.tolist()} lies outside the world [0, {layout.size})^2 of layout {layout.name!r}")
        kind = layout.kind_at(position)
        if kind != FREE:
            raise ValueError(f"start position {position.tolist()} lies in a {KIND_NAMES[kind]} cell {layout.cell_of(position)} of layout {layout.name!r}")
        return position

    def _reset(self, indices, rngs, options):
        cells = self.layout.start_cells
        for k, index in enumerate(indices):
            opts = options[k] if options is not None else {}
            if "position" in opts:
                self.positions[index] = self.check_start(opts["position"])
            else:
                cell = cells[rngs[k].integers(len(cells))]
                self.positions[index] = cell + rngs[k].random(2)  # uniform inside the cell
        self.elapsed_steps[indices] = 0
        self.goals[indices] = -1

    def _step(self, actions):
        kinds = self.layout.cell_kinds
        velocity = np.clip(actions, -1.0, 1.0) * self.max_speed
        proposed = np.clip(self.positions + velocity * self.dt, 0.0, self.layout.size - EDGE_MARGIN)
        cells = np.floor(proposed).astype(np.int64)
        blocked = kinds[cells[:, 1], cells[:, 0]] == WALL
        self.positions = np.where(blocked[:, None], self.positions, proposed)
        cells = np.floor(self.positions).astype(np.int64)
        kind = kinds[cells[:, 1], cells[:, 0]]
        self.goals = self.layout.goal_labels[cells[:, 1], cells[:, 0]]
        rewards = np.where(kind == GOAL, GOAL_REWARD, np.where(kind == DEATH, DEATH_REWARD, 0.0))
        terminated = (kind == GOAL) | (kind == DEATH)
        self.elapsed_steps += 1
        truncated = self.elapsed_steps >= self.max_steps
        return rewards, terminated, truncated

    # -- outputs ------------------------------------------------------------------------------
    def observations(self) -> np.ndarray:
        half = self.layout.size / 2.0
        return ((self.positions - half) / half).astype(np.float32)

    def infos(self) -> list[dict[str, Any]]:
        positions = self.positions.copy()
        goals = self.goals.tolist()
        return [{"goal": goal, "is_success": goal >= 0, "position": position} for goal, position in zip(goals, positions)]

    def reset_infos(self, indices) -> list[dict[str, Any]]:
        return [{"position": self.positions[i].copy()} for i in np.asarray(indices).reshape(-1)]

    def render(self, index: int) -> np.ndarray:
        """The layout at ``PIXELS_PER_CELL`` pixels per cell (y up) with the agent as a dot."""
        if self._background is None:
            cells = layout_image(self.layout)[::-1]  # image row 0 is the top of the world
            image = np.repeat(np.repeat(cells, PIXELS_PER_CELL, axis=0), PIXELS_PER_CELL, axis=1)
            grid_line = np.zeros(image.shape[:2], dtype=bool)
            grid_line[::PIXELS_PER_CELL] = True
            grid_line[:, ::PIXELS_PER_CELL] = True
            free = np.repeat(np.repeat(self.layout.cell_kinds[::-1] == FREE, PIXELS_PER_CELL, 0), PIXELS_PER_CELL, 1)
            image[grid_line & free] = GRID_LINE_COLOR
            self._background = image
        image = self._background.copy()
        x, y = self.positions[index]
        if np.isfinite(x):
            size = self.layout.size
            draw_disc(image, (size - y) * PIXELS_PER_CELL, x * PIXELS_PER_CELL, 0.45 * PIXELS_PER_CELL, AGENT_COLOR)
        return image


class SmoothWorldEnv(CoreEnv):
    r"""Smooth World navigation (section 5.1) as a gymnasium environment.

    Arguments:
        layout: one of :data:`~mepoly_dist.zoo.envs.layouts.LAYOUTS` (``two_walls``,
            ``three_goals``, ``four_walls``, ``tree_in_the_middle``, ``two_slits``,
            ``cshape``) or a :class:`~mepoly_dist.zoo.envs.layouts.Layout`.
        max_steps: the episode is truncated after this many steps.
        dt: time step of the kinematics :math:`p' = p + \operatorname{clip}(a, -1, 1) v_{\max} \Delta t`.
        max_speed: :math:`v_{\max}`.
        render_mode: None or ``"rgb_array"`` (a ``size * 10`` pixel square, uint8).

    ``reset(options={"position": [x, y]})`` starts at a given point (world units); a point
    outside the world or in a wall, goal or death cell raises ``ValueError``.

    Example:
        >>> env = SmoothWorldEnv("four_walls")
        >>> obs, info = env.reset(seed=0, options={"position": [12.5, 12.5]})
        >>> obs
        array([0., 0.], dtype=float32)
        >>> obs, reward, terminated, truncated, info = env.step([1.0, 0.0])
        >>> info["position"]
        array([12.75, 12.5 ])
    """

    def __init__(self, layout: str | Layout = DEFAULT_LAYOUT, max_steps: int = 256, dt: float = 0.25, max_speed: float = 1.0, render_mode: str | None = None):
        super().__init__(SmoothWorldCore(1, layout, max_steps, dt, max_speed), render_mode)

    layout = core_attribute("layout", "The :class:`~mepoly_dist.zoo.envs.layouts.Layout`.")
    max_steps = core_attribute("max_steps", "Steps after which an episode is truncated.")
    dt = core_attribute("dt", "Time step of the kinematics.")
    max_speed = core_attribute("max_speed", "Speed of the action (1, 0).")

    @property
    def position(self) -> np.ndarray:
        """The agent's position in world units (a copy)."""
        return self.core.positions[0].copy()

