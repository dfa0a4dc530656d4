r"""Smooth World layouts as data: wall, goal and death cell sets on a square grid (section 5.1).

A layout is a :class:`Layout`: a name, a grid size and three disjoint sets of integer cells
``(x, y)`` (``x`` the column, ``y`` the row, ``y`` pointing up), plus the fixed starts used
for evaluation.  A continuous position :math:`p \in [0, \text{size})^2` (world units, one
unit per cell) lies in cell :math:`(\lfloor p_x \rfloor, \lfloor p_y \rfloor)`.

The six layouts of the paper's code (grid 25, centre cell :math:`c = 12`):

============================  ===============================================  ==================
layout                        cells                                            evaluation start
============================  ===============================================  ==================
``two_walls``                 goals: rows 0, 1 (bottom) and 23, 24 (top)       (2.5, 12.5)
``three_goals``               deaths: 11..13 x 11..13; goals: 3 x 3 blocks     (12.5, 9.5)
                              centred at (12, 18), (7, 7), (17, 7)
``four_walls``                goals: 3 x 3 blocks centred at (12, 23),         (12.5, 12.5)
                              (12, 1), (1, 12), (23, 12)
``tree_in_the_middle``        deaths: 13..17 x 10..14; goals: 23..24 x 10..14  (2.5, 12.5)
``two_slits``                 walls: column 15 except rows 4..7 and 17..20;    (2.5, 12.5)
                              goals: column 24
``cshape``                    walls: rows 7 and 17 over columns 7..17 and      (19.5, 12.5)
                              column 17 over rows 7..17;
                              goals: 10..14 x 10..14
============================  ===============================================  ==================

``three_goals`` deviates from "start at the centre": the centre cell is a death cell, so its
evaluation start is just below the death block.

The three single-goal layouts also name the **routes** past their obstacle: disjoint cell sets
that every path from the evaluation start to the goal crosses (it cannot reach the goal without
entering one of them).  A path's route is the last of them it enters (an early detour into the
other one does not count); the route entropy of a
policy (:mod:`mepoly_dist.zoo.metrics`) is then what the goal entropy is on the other layouts.

============================  ===============================================================
layout                        routes (in order)
============================  ===============================================================
``tree_in_the_middle``        under the death block (columns 13..17, rows 0..9), over it (rows 15..24)
``two_slits``                 the lower opening (column 15, rows 4..7), the upper one (rows 17..20)
``cshape``                    under the C (columns 7..17, rows 0..6), over it (rows 18..24)
============================  ===============================================================

Goal regions are the 4-connected components of the goal cells (:func:`scipy.ndimage.label`);
their ids ``0 .. num_goals - 1`` follow scipy's raster order over the ``[y, x]`` grid, i.e.
by lowest row first, then by column.  For ``four_walls``: 0 bottom, 1 left, 2 right, 3 top;
for ``two_walls``: 0 bottom, 1 top; for ``three_goals``: 0 lower left, 1 lower right, 2 top.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
from scipy import ndimage

__all__ = ["Layout", "LAYOUTS", "DEFAULT_LAYOUT", "FREE", "WALL", "GOAL", "DEATH", "KIND_NAMES", "rectangle", "square", "get_layout"]

#: cell kinds of :attr:`Layout.cell_kinds`
FREE, WALL, GOAL, DEATH = 0, 1, 2, 3
KIND_NAMES = {FREE: "free", WALL: "wall", GOAL: "goal", DEATH: "death"}

Cells = frozenset  # frozenset[tuple[int, int]]


def rectangle(x_min: int, x_max: int, y_min: int, y_max: int) -> frozenset[tuple[int, int]]:
    """The cells ``(x, y)`` with ``x_min <= x <= x_max`` and ``y_min <= y <= y_max`` (inclusive)."""
    return frozenset((x, y) for x in range(x_min, x_max + 1) for y in range(y_min, y_max + 1))


def square(center: tuple[int, int], half_width: int = 1) -> frozenset[tuple[int, int]]:
    """The ``(2 half_width + 1)^2`` block of cells centred at cell ``center``."""
    cx, cy = center
    return rectangle(cx - half_width, cx + half_width, cy - half_width, cy + half_width)


@dataclasses.dataclass(frozen=True)
class Layout:
    """A Smooth World layout: disjoint wall, goal and death cell sets on a ``size x size`` grid.

    Walls block motion (no penalty), goal cells end the episode with the goal reward, death
    cells with the death penalty.  Episodes start in any other ("free") cell.

    Arguments:
        name: the layout's name.
        size: cells per side; the world is ``[0, size)^2``.
        walls, goals, deaths: frozensets of ``(x, y)`` integer cells, ``0 <= x, y < size``.
        eval_starts: fixed start positions (world units) for evaluation fans; each must lie in
            a free cell.
        routes: disjoint sets of free cells, one per way past the layout's obstacle (see the
            module docstring); empty where the goal regions tell the ways apart.
        description: one line for plots and reports.
    """

    name: str
    _: dataclasses.KW_ONLY
    size: int = 25
    walls: Cells = frozenset()
    goals: Cells = frozenset()
    deaths: Cells = frozenset()
    eval_starts: tuple[tuple[float, float], ...] = ()
    routes: tuple[Cells, ...] = ()
    description: str = ""

    def __post_init__(self):
        for kind in ("walls", "goals", "deaths"):
            cells = frozenset((int(x), int(y)) for x, y in getattr(self, kind))
            outside = sorted(c for c in cells if not (0 <= c[0] < self.size and 0 <= c[1] < self.size))
            if outside:
                raise ValueError(f"layout {self.name!r}: {kind} cells {outside[:4]} lie outside the {self.size} x {self.size} grid")
            object.__setattr__(self, kind, cells)
        for a, b in (("walls", "goals"), ("walls", "deaths"), ("goals", "deaths")):
            common = getattr(self, a) & getattr(self, b)
            if common:
                raise ValueError(f"layout {self.name!r}: cells {sorted(common)[:4]} are both {a} and {b}")
        if not self.goals:
            raise ValueError(f"layout {self.name!r} has no goal cells")
        routes = tuple(frozenset((int(x), int(y)) for x, y in route) for route in self.routes)
        object.__setattr__(self, "routes", routes)
        for i, route in enumerate(routes):
            blocked = sorted(c for c in route if not (0 <= c[0] < self.size and 0 <= c[1] < self.size)
                             or c in self.walls or c in self.goals or c in self.deaths)
            if blocked or not route:
                raise ValueError(f"layout {self.name!r}: route {i} must be a non-empty set of free cells, got {blocked[:4] or 'none'}")
            for j in range(i):
                if route & routes[j]:
                    raise ValueError(f"layout {self.name!r}: routes {j} and {i} share cells {sorted(route & routes[j])[:4]}")
        starts = tuple((float(x), float(y)) for x, y in self.eval_starts)
        object.__setattr__(self, "eval_starts", starts)
        for start in starts:
            kind = self.kind_at(start)
            if kind != FREE:
                raise ValueError(f"layout {self.name!r}: evaluation start {start} lies in a {KIND_NAMES[kind]} cell")

    # -- grids (indexed [y, x]) ---------------------------------------------------------------
    @cached_property
    def cell_kinds(self) -> np.ndarray:
        """``(size, size)`` int8 grid indexed ``[y, x]``: FREE, WALL, GOAL or DEATH (read-only)."""
        return self._paint(((WALL, self.walls), (GOAL, self.goals), (DEATH, self.deaths)), FREE, np.int8)

    @cached_property
    def goal_labels(self) -> np.ndarray:
        """``(size, size)`` int64 grid indexed ``[y, x]``: the goal region id of each goal cell, -1 elsewhere.

        Regions are the 4-connected components of the goal cells (``scipy.ndimage.label``),
        numbered in raster order of the ``[y, x]`` grid (lowest row first, then column).
        """
        labels, _ = ndimage.label(self.cell_kinds == GOAL)  # default structure: 4-connectivity
        labels = labels.astype(np.int64) - 1
        labels.flags.writeable = False
        return labels

    @cached_property
    def num_goals(self) -> int:
        """The number of goal regions."""
        return int(self.goal_labels.max()) + 1

    @cached_property
    def goal_centroids(self) -> np.ndarray:
        """``(num_goals, 2)`` centres of the goal regions in world units (mean of the cell centres)."""
        ys, xs = np.nonzero(self.goal_labels >= 0)
        ids = self.goal_labels[ys, xs]
        counts = np.bincount(ids, minlength=self.num_goals)
        cx = np.bincount(ids, weights=xs + 0.5, minlength=self.num_goals) / counts
        cy = np.bincount(ids, weights=ys + 0.5, minlength=self.num_goals) / counts
        return np.stack([cx, cy], axis=1)

    @cached_property
    def route_labels(self) -> np.ndarray:
        """``(size, size)`` int64 grid indexed ``[y, x]``: the route id of each route cell, -1 elsewhere."""
        return self._paint(enumerate(self.routes), -1, np.int64)

    def _paint(self, labelled_cells, background: int, dtype) -> np.ndarray:
        """A read-only ``(size, size)`` grid indexed ``[y, x]``: ``background``, with the cells
        ``(x, y)`` of each ``(label, cells)`` pair set to ``label`` (later pairs win)."""
        grid = np.full((self.size, self.size), background, dtype=dtype)
        for label, cells in labelled_cells:
            for x, y in cells:
                grid[y, x] = label
        grid.flags.writeable = False
        return grid

    @cached_property
    def start_cells(self) -> np.ndarray:
        """``(m, 2)`` int64 array of the free cells ``(x, y)`` (episode starts), sorted by row then column."""
        ys, xs = np.nonzero(self.cell_kinds == FREE)
        cells = np.stack([xs, ys], axis=1).astype(np.int64)
        cells.flags.writeable = False
        return cells

    # -- queries --------------------------------------------------------------------------------
    def cell_of(self, position) -> tuple[int, int]:
        """The cell ``(floor(x), floor(y))`` of a position in world units."""
        x, y = (float(v) for v in position)
        return int(np.floor(x)), int(np.floor(y))

    def contains(self, position) -> bool:
        """Whether a position lies in the world ``[0, size)^2``."""
        x, y = (float(v) for v in position)
        return 0.0 <= x < self.size and 0.0 <= y < self.size

    def kind_at(self, position) -> int:
        """FREE, WALL, GOAL or DEATH at a position in world units (which must lie in the world)."""
        if not self.contains(position):
            raise ValueError(f"position {tuple(position)} lies outside the world [0, {self.size})^2 of layout {self.name!r}")
        x, y = self.cell_of(position)
        return int(self.cell_kinds[y, x])

    def route_of(self, path) -> int:
        """The route of a path (``(T, 2)`` positions in world units): the id of the last route
        region it enters, -1 if it enters none (or the layout has no routes)."""
        cells = np.floor(np.asarray(path, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
        inside = ((cells >= 0) & (cells < self.size)).all(1)
        labels = self.route_labels[cells[inside, 1], cells[inside, 0]]
        entered = labels[labels >= 0]
        return int(entered[-1]) if entered.size else -1

    def goal_of(self, cell: tuple[int, int]) -> int:
        """The goal region id of an integer cell ``(x, y)``, -1 if it is not a goal cell."""
        x, y = cell
        if not (0 <= x < self.size and 0 <= y < self.size):
            return -1
        return int(self.goal_labels[y, x])


def _layouts(size: int = 25) -> dict[str, Layout]:
    c = size // 2  # 12: the centre cell
    last = size - 1
    layouts = [
        Layout(
            "two_walls",
            size=size,
            goals=rectangle(0, last, 0, 1) | rectangle(0, last, last - 1, last),
            eval_starts=[(2.5, c + 0.5)],
            description="goal bands along the bottom and top edges",
        ),
        Layout(
            "three_goals",
            size=size,
            deaths=square((c, c)),
            goals=square((c, c + 6)) | square((c - 5, c - 5)) | square((c + 5, c - 5)),
            # the centre is a death cell: start just below the death block
            eval_starts=[(c + 0.5, c - 2.5)],
            description="three goal blocks around a central death block",
        ),
        Layout(
            "four_walls",
            size=size,
            goals=square((c, last - 1)) | square((c, 1)) | square((1, c)) | square((last - 1, c)),
            eval_starts=[(c + 0.5, c + 0.5)],
            description="four goal blocks at the middles of the edges",
        ),
        Layout(
            "tree_in_the_middle",
            size=size,
            deaths=rectangle(c + 1, c + 5, c - 2, c + 2),
            goals=rectangle(last - 1, last, c - 2, c + 2),
            eval_starts=[(2.5, c + 0.5)],
            routes=(rectangle(c + 1, c + 5, 0, c - 3), rectangle(c + 1, c + 5, c + 3, last)),
            description="a death block between the start and the goal on the right edge",
        ),
        Layout(
            "two_slits",
            size=size,
            walls=rectangle(c + 3, c + 3, 0, last) - rectangle(c + 3, c + 3, c - 8, c - 5) - rectangle(c + 3, c + 3, c + 5, c + 8),
            goals=rectangle(last, last, 0, last),
            eval_starts=[(2.5, c + 0.5)],
            routes=(rectangle(c + 3, c + 3, c - 8, c - 5), rectangle(c + 3, c + 3, c + 5, c + 8)),
            description="a wall with two openings before the goal column on the right edge",
        ),
        Layout(
            "cshape",
            size=size,
            walls=rectangle(c - 5, c + 5, c - 5, c - 5) | rectangle(c - 5, c + 5, c + 5, c + 5) | rectangle(c + 5, c + 5, c - 5, c + 5),
            goals=rectangle(c - 2, c + 2, c - 2, c + 2),
            eval_starts=[(c + 7.5, c + 0.5)],
            routes=(rectangle(c - 5, c + 5, 0, c - 6), rectangle(c - 5, c + 5, c + 6, last)),
            description="a goal inside a C-shaped wall that opens to the left; start behind its back",
        ),
    ]
    return {layout.name: layout for layout in layouts}


#: the paper's six Smooth World layouts, by name
LAYOUTS: dict[str, Layout] = _layouts()
#: the layout of a Smooth World built without one (the paper's section 5.1 figure)
DEFAULT_LAYOUT = "four_walls"


def get_layout(layout: str | Layout) -> Layout:
    """A :class:`Layout` by name (or the layout itself); unknown names raise ``ValueError``."""
    if isinstance(layout, Layout):
        return layout
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"unknown Smooth World layout {layout!r}; expected one of {list(LAYOUTS)}")
    return LAYOUTS[layout]
