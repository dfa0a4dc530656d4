"""Figures a person wants to look at: a policy's action density beside its target (exact
for MePoly, a histogram for other policies), Smooth World trajectory fans from the fixed
starts over the layout and drift fields over the whole world, and learning curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .envs.layouts import Layout

__all__ = ["density_grid", "plot_density_comparison", "plot_policy_density", "draw_layout", "draw_trajectories", "plot_trajectory_fan", "draw_drift_field", "plot_learning_curves"]


def density_grid(dist, resolution: int = 200) -> np.ndarray:
    """Exact density of a 2-D, unbatched MePoly on a ``resolution x resolution`` grid (rows = y)."""
    if dist.family.dim != 2 or dist.batch_shape != torch.Size():
        raise ValueError("density_grid needs an unbatched 2-D MePoly")
    line = torch.linspace(-1, 1, resolution, dtype=dist.natural_params.dtype)
    gy, gx = torch.meshgrid(line, line, indexing="ij")
    with torch.no_grad():
        return dist.log_prob(torch.stack([gx, gy], -1)).exp().numpy()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: colours of the bandit figures: policy samples (orange) under the target points (dark blue)
SAMPLE_COLOR, POINT_COLOR = "#fb8500", "#023047"


def _colorbar(fig, ax, image, label: str):
    """A colorbar beside ``ax``, as tall as it (a ``None`` image: an empty slot of the same width, so
    that panels with and without a colorbar keep one size)."""
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    cax = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.08)
    if image is None:
        cax.axis("off")
        return None
    bar = fig.colorbar(image, cax=cax)
    bar.set_label(label)
    return bar


def plot_density_comparison(path, dist, target_log_density, points=None, samples=None, title: str = "", alpha: float | None = None):
    """Three panels: the target density, the policy's density (MePoly's exact one, or a histogram of
    ``samples``) and the policy's samples under the target points, on ``[-1, 1]^2``.

    Both densities are normalized on the square and drawn on one colour scale (each with its
    colorbar; policy pixels above the target's peak and the policy's 99.5th percentile saturate,
    and the colorbar then says so); the target points are drawn over the samples (dark blue over
    orange) so that the shape to be covered stays visible, with a legend of both.  ``dist`` may be ``None`` for a policy without an explicit
    density: the middle panel then shows the histogram of ``samples`` (required in that case).
    ``alpha`` (the Boltzmann temperature) goes into the target's title.
    """
    from matplotlib.lines import Line2D

    plt = _pyplot()
    resolution = 200
    line = np.linspace(-1, 1, resolution)
    gx, gy = np.meshgrid(line, line)
    target = target_log_density(np.stack([gx.ravel(), gy.ravel()], -1)).reshape(gx.shape)
    target = np.exp(target - target.max())
    target /= target.sum() * (2 / (resolution - 1)) ** 2
    if dist is None and samples is None:
        raise ValueError("a policy without a density needs samples for its histogram")
    if dist is not None:
        policy = density_grid(dist, resolution)
        policy_title = f"MePoly density (order {dist.family.order})"
    else:
        policy, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=64, range=[[-1, 1], [-1, 1]], density=True)
        policy_title = f"policy: histogram of {len(samples):,} actions"
    # one colour scale for both densities, so that they compare; a few policy pixels above the
    # target's peak (a sharp mode, a histogram's corner bin) saturate instead of darkening the rest
    vmax = max(float(target.max()), float(np.percentile(policy, 99.5)))
    ncols = 3 if samples is not None else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols, 4.4))
    extent = (-1, 1, -1, 1)
    for ax, density, panel_title in ((axes[0], target, "target  exp(r / alpha)" if alpha is None else f"target  exp(r / {alpha:g})"),
                                     (axes[1], policy, policy_title)):
        image = ax.imshow(density, origin="lower", extent=extent, cmap="magma", vmin=0.0, vmax=vmax)
        ax.set_title(panel_title)
        bar = _colorbar(fig, ax, image, "density")
        if density.max() > vmax:
            bar.set_label(f"density (clipped; max {density.max():.3g})")
    if samples is not None:
        ax = axes[2]
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c=SAMPLE_COLOR, alpha=0.5, linewidths=0, zorder=1, rasterized=True)
        handles = [Line2D([], [], ls="", marker="o", ms=6, color=SAMPLE_COLOR, label=f"policy samples ({len(samples):,})")]
        if points is not None:
            ax.scatter(points[:, 0], points[:, 1], s=3, c=POINT_COLOR, linewidths=0, zorder=2, rasterized=True)
            handles.insert(0, Line2D([], [], ls="", marker="o", ms=6, color=POINT_COLOR, label=f"target points ({len(points):,})"))
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_aspect("equal")
        ax.set_title("samples and target points")
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=8.5, frameon=False,
                  handletextpad=0.1, columnspacing=1.0)
        _colorbar(fig, ax, None, "")
    for ax in axes:
        ax.set_xticks([-1, 0, 1])
        ax.set_yticks([-1, 0, 1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # "tight": the legend under the samples panel
    plt.close(fig)


def plot_policy_density(path, policy, points, alpha: float, samples, title: str = ""):
    """Bandit figure of an SB3 policy: the exact density for a MePoly policy, else a histogram."""
    import torch

    from .targets import boltzmann_log_density

    dist = None
    family = getattr(policy, "family", None)
    if family is not None and family.dim == 2:
        with torch.no_grad():
            obs = torch.zeros((1,) + policy.observation_space.shape, device=policy.device)
            dist = policy.get_distribution(obs).distribution
            if family.device.type != "cpu":  # plot on the CPU without moving the policy's own family
                from ..family import MePolyFamily

                family = MePolyFamily(**family.config)
            dist = type(dist)(dist.natural_params[0].cpu().to(family.dtype), family)
    plot_density_comparison(path, dist, lambda x: boltzmann_log_density(x, points, alpha), points, samples[:20000], title=title, alpha=alpha)


def draw_trajectories(ax, trajectories, linewidth: float = 1.5, ends: bool = True):
    """Draw Smooth World paths (``(T + 1, 2)`` position arrays) on ``ax``, coloured by time
    (plasma: dark at the start), with an ``x`` at each end when ``ends``."""
    from matplotlib.collections import LineCollection

    for path_xy in trajectories:
        segments = np.stack([path_xy[:-1], path_xy[1:]], axis=1)
        lines = LineCollection(segments, cmap="plasma", linewidths=linewidth, alpha=0.7)
        lines.set_array(np.linspace(0, 1, len(segments)))
        ax.add_collection(lines)
        if ends:
            ax.plot(*path_xy[-1], marker="x", color="black", markersize=4)


def plot_trajectory_fan(path, layout, trajectories_by_start: dict, title: str = "", max_paths: int = 50):
    """Smooth World: the layout with up to ``max_paths`` trajectories per fixed start (colour = time)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    draw_layout(ax, layout)
    for trajectories in trajectories_by_start.values():
        draw_trajectories(ax, trajectories[:max_paths])
        if trajectories:
            ax.plot(*trajectories[0][0], marker="o", markersize=9, markerfacecolor="white", markeredgecolor="black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_drift_field(ax, field: dict):
    r"""Draw a Smooth World drift field (:func:`mepoly_dist.zoo.rollouts.smooth_world_drift`) on
    ``ax`` (a layout drawn by :func:`~mepoly_dist.zoo.plotting.draw_layout`): one arrow per
    free cell, the longest possible drift (full speed on both axes, length :math:`\sqrt 2`)
    spanning 0.9 cells, coloured by the length on a fixed :math:`[0, \sqrt 2]` scale so that panels
    compare.  Returns the quiver."""
    positions, drift = field["positions"], field["drift"]
    quiver = ax.quiver(positions[:, 0], positions[:, 1], drift[:, 0], drift[:, 1], field["speed"], cmap="viridis",
                       clim=(0.0, np.sqrt(2.0)), angles="xy", scale_units="xy", scale=np.sqrt(2.0) / 0.9, width=0.004, pivot="mid")
    return quiver


def plot_learning_curves(path, curves: dict, ylabel: str = "episode reward", title: str = "", smoothing: str | None = None,
                         evaluations: dict | None = None, evaluation_label: str = "at each checkpoint, not smoothed"):
    """One line per name: ``curves[name] = (timesteps, values)``; ``smoothing`` says how the values
    were smoothed (it is written under ``ylabel``, e.g. "moving average of 1,024 episodes").

    ``evaluations`` (``label -> (timesteps, values)``, e.g. TV to the target, coverage, success
    rate, goal entropy) get a second panel with markers at the evaluated steps, on a [0, 1] axis
    when every value lies in it; ``evaluation_label`` describes them."""
    from matplotlib.ticker import EngFormatter

    plt = _pyplot()
    evaluations = {label: curve for label, curve in (evaluations or {}).items() if len(curve[0])}
    ncols = 2 if evaluations else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False, sharex=True)
    ax = axes[0, 0]
    for name, (steps, values) in curves.items():
        ax.plot(np.asarray(steps), np.asarray(values), label=name)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{ylabel}\n({smoothing})" if smoothing else ylabel)
    if len(curves) > 1:
        ax.legend()
    if evaluations:
        ax.set_title("training episodes")
        eval_ax = axes[0, 1]
        for label, (steps, values) in evaluations.items():
            eval_ax.plot(np.asarray(steps), np.asarray(values), marker="o", ms=3.5, label=label)
        everything = np.concatenate([np.asarray(values, dtype=float).ravel() for _, values in evaluations.values()])
        everything = everything[np.isfinite(everything)]
        if everything.size and everything.min() >= 0.0 and everything.max() <= 1.0:
            eval_ax.set_ylim(-0.02, 1.02)
        eval_ax.set_xlabel("environment steps")
        eval_ax.set_ylabel("value")
        eval_ax.set_title(f"evaluation ({evaluation_label})")
        eval_ax.legend(fontsize=8, loc="best")
        eval_ax.tick_params(labelbottom=True)
    for ax in axes.ravel():
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title) if evaluations else axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_layout(ax, layout: str | Layout, legend: bool = False, label_goals: bool = True):
    """Draw a layout on a matplotlib axes in world coordinates (``[0, size]^2``, y up).

    Cells are coloured as in the ``rgb_array`` rendering (walls grey, goals green, deaths
    red), with light grid lines; ``label_goals`` writes each goal region's id at its centre
    and ``legend`` adds a legend of the cell kinds.  Returns ``ax``.
    """
    from .envs.layouts import DEATH, GOAL, KIND_NAMES, WALL, get_layout
    from .envs.smooth_world import LAYOUT_COLORS, layout_image

    layout = get_layout(layout)
    size = layout.size
    ax.imshow(layout_image(layout), extent=(0, size, 0, size), origin="lower", interpolation="nearest", zorder=0)
    ax.set_xticks(np.arange(0, size + 1, 5))
    ax.set_yticks(np.arange(0, size + 1, 5))
    ax.set_xticks(np.arange(0, size + 1), minor=True)
    ax.set_yticks(np.arange(0, size + 1), minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.5, zorder=1)
    ax.grid(which="major", color="#bbbbbb", linewidth=0.8, zorder=1)
    ax.set_xlim(0, size)
    ax.set_ylim(0, size)
    ax.set_aspect("equal")
    if label_goals and layout.num_goals > 1:
        for goal, (x, y) in enumerate(layout.goal_centroids):
            ax.text(x, y, str(goal), ha="center", va="center", color="white", fontsize=8, fontweight="bold", zorder=3)
    if legend:
        from matplotlib.patches import Patch

        present = [kind for kind, cells in ((WALL, layout.walls), (GOAL, layout.goals), (DEATH, layout.deaths)) if cells]
        handles = [Patch(color=np.array(LAYOUT_COLORS[kind]) / 255, label=KIND_NAMES[kind]) for kind in present]
        ax.legend(handles=handles, loc="upper right", fontsize=7)
    return ax
