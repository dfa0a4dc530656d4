"""Figures a person wants to look at: the exact MePoly density beside its target."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["density_grid", "plot_density_comparison"]


def density_grid(dist, resolution: int = 200) -> np.ndarray:
    """Exact density of a 2-D, unbatched MePoly on a ``resolution x resolution`` grid (rows = y)."""
    if dist.family.dim != 2 or dist.batch_shape != torch.Size():
        raise ValueError("density_grid needs an unbatched 2-D MePoly")
    line = torch.linspace(-1, 1, resolution, dtype=dist.natural_params.dtype)
    gy, gx = torch.meshgrid(line, line, indexing="ij")
    with torch.no_grad():
        return dist.log_prob(torch.stack([gx, gy], -1)).exp().numpy()


def plot_density_comparison(path, dist, target_log_density, points=None, samples=None, title: str = ""):
    """Three panels: target density, MePoly density, MePoly samples over the target points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resolution = 200
    line = np.linspace(-1, 1, resolution)
    gx, gy = np.meshgrid(line, line)
    target = target_log_density(np.stack([gx.ravel(), gy.ravel()], -1)).reshape(gx.shape)
    target = np.exp(target - target.max())
    target /= target.sum() * (2 / (resolution - 1)) ** 2
    ncols = 3 if samples is not None else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 4.2))
    extent = (-1, 1, -1, 1)
    axes[0].imshow(target, origin="lower", extent=extent, cmap="magma")
    axes[0].set_title("target exp(r / alpha)")
    axes[1].imshow(density_grid(dist, resolution), origin="lower", extent=extent, cmap="magma")
    axes[1].set_title(f"MePoly density (order {dist.family.order})")
    if samples is not None:
        if points is not None:
            axes[2].scatter(points[:, 0], points[:, 1], s=1, c="#8ecae6", alpha=0.5, label="target points")
        axes[2].scatter(samples[:, 0], samples[:, 1], s=1, c="#fb8500", alpha=0.4, label="MePoly samples")
        axes[2].set_xlim(-1, 1)
        axes[2].set_ylim(-1, 1)
        axes[2].set_aspect("equal")
        axes[2].set_title("samples")
        axes[2].legend(loc="lower right", markerscale=6, fontsize=7)
    for ax in axes:
        ax.set_xticks([-1, 0, 1])
        ax.set_yticks([-1, 0, 1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
