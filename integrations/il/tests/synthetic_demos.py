"""A synthetic ManiSkill-format trajectory file for the tests (h5py only)."""

from __future__ import annotations

import h5py
import numpy as np


def write_trajectory_file(path, episode_lengths, obs_dim, action_dim, seed=0):
    """A ManiSkill trajectory file (``traj_<id>/obs`` (L + 1, obs_dim), ``traj_<id>/actions`` (L, action_dim))."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as file:
        for episode, length in enumerate(episode_lengths):
            group = file.create_group(f"traj_{episode}")
            # smooth trajectories: cumulative sums of small steps, actions in [-1, 1]
            group["obs"] = np.cumsum(rng.normal(0.0, 0.1, (length + 1, obs_dim)), axis=0).astype(np.float32)
            group["actions"] = np.tanh(np.cumsum(rng.normal(0.0, 0.3, (length, action_dim)), axis=0)).astype(np.float32)
    return path
