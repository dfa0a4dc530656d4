"""ManiSkill trajectory files as (observation history, action chunk) training pairs.

A ManiSkill trajectory file is an HDF5 file with one group ``traj_{episode_id}`` per episode,
each holding ``actions`` (L, action_dim) and, after ``replay_trajectory -o state``, ``obs``
(L + 1, obs_dim): the observation before every action plus the final one. A JSON file of the
same stem beside it lists the episodes (``episodes[i]["episode_id"]``, ``"control_mode"``) and
the environment (``env_info``). This module reads those files with h5py and numpy only, so it
works without ManiSkill installed.

Slicing follows the paper's appendix A ("Data slicing and horizons": fixed-length pairs,
padding repeats the boundary state/action) in Diffusion Policy's layout: for step ``t`` of an
episode with ``L`` actions,

.. math::

    \\text{obs history}_t = (o_{\\max(0,\\,t-T_o+1)}, \\dots, o_t),\\qquad
    \\text{action chunk}_t = (a_t, \\dots, a_{\\min(L-1,\\,t+T_a-1)}),

each index clamped to the episode: an observation history reaching before the first step
repeats the first observation, an action chunk reaching past the last action repeats the last
action. Every step ``t = 0 .. L-1`` gives one pair, so an episode of ``L`` actions gives ``L``
pairs. (ManiSkill's own Diffusion Policy baseline pads past the end with zero deltas and the
last gripper command instead; the paper repeats the last action, and so does this module.)

>>> import numpy as np
>>> demo = Demonstration(observations=np.arange(4.0)[:, None], actions=np.arange(3.0)[:, None] * 10)
>>> pairs = TrainingPairs([demo], obs_horizon=2, action_horizon=3)
>>> obs_history, action_chunk = pairs[0]
>>> obs_history[:, 0].tolist(), action_chunk[:, 0].tolist()
([0.0, 0.0], [0.0, 10.0, 20.0])
>>> pairs[2][1][:, 0].tolist()
[20.0, 20.0, 20.0]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Demonstration",
    "NotAManiSkillTrajectoryError",
    "TrainingPairs",
    "load_demonstrations",
    "read_trajectory_metadata",
    "slice_indices",
]

_EPISODE_GROUP = re.compile(r"traj_(\d+)$")


class NotAManiSkillTrajectoryError(ValueError):
    """A file is not a ManiSkill trajectory (not HDF5, no ``traj_*`` groups, or no actions/obs)."""


@dataclass(frozen=True)
class Demonstration:
    """One episode: ``observations`` (L + 1 or L, obs_dim) and ``actions`` (L, action_dim)."""

    observations: np.ndarray
    actions: np.ndarray
    episode_id: int = 0

    def __post_init__(self):
        observations, actions = np.asarray(self.observations), np.asarray(self.actions)
        if actions.ndim != 2 or observations.ndim != 2:
            raise ValueError(
                f"episode {self.episode_id}: expected 2-d observations and actions, got shapes "
                f"{observations.shape} and {actions.shape}"
            )
        num_steps = actions.shape[0]
        if num_steps == 0:
            raise ValueError(f"episode {self.episode_id}: no actions")
        if observations.shape[0] not in (num_steps, num_steps + 1):
            raise ValueError(
                f"episode {self.episode_id}: {observations.shape[0]} observations for {num_steps} actions "
                f"(expected {num_steps + 1}: one before every action and the final one, or {num_steps})"
            )
        object.__setattr__(self, "observations", observations)
        object.__setattr__(self, "actions", actions)

    @property
    def num_steps(self) -> int:
        """Number of actions ``L``."""
        return self.actions.shape[0]


def read_trajectory_metadata(h5_path: str | Path) -> dict | None:
    """Returns the JSON file beside a trajectory file (same stem, ``.json``), or ``None`` if absent."""
    json_path = Path(h5_path).with_suffix(".json")
    if not json_path.exists():
        return None
    return json.loads(json_path.read_text())


def _episode_ids_in(h5_file) -> list[int]:
    return sorted(int(match.group(1)) for key in h5_file.keys() if (match := _EPISODE_GROUP.match(key)))


def load_demonstrations(h5_path: str | Path, num_episodes: int | None = None) -> list[Demonstration]:
    """Reads the episodes of a ManiSkill trajectory file with flat state observations.

    Arguments:
        h5_path: the ``.h5`` file written by ManiSkill's ``replay_trajectory`` with ``-o state``
            (or by ``mepoly-maniskill demos``).
        num_episodes: read only the first this many episodes (all when ``None``).

    Returns:
        The episodes in the JSON file's order (by episode id when there is no JSON file).

    Raises:
        NotAManiSkillTrajectoryError: the file is not HDF5, has no ``traj_*`` group, or an
            episode lacks ``actions`` or ``obs`` (or holds them in an unexpected form).
    """
    import h5py  # a dependency of mani_skill; imported here so that the doc above reads without it

    path = Path(h5_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such trajectory file")
    try:
        h5_file = h5py.File(path, "r")
    except OSError as error:
        raise NotAManiSkillTrajectoryError(f"{path}: not a ManiSkill trajectory, not an HDF5 file ({error})") from error
    with h5_file:
        episode_ids = _episode_ids_in(h5_file)
        if not episode_ids:
            raise NotAManiSkillTrajectoryError(
                f"{path}: not a ManiSkill trajectory, no traj_<episode id> groups (top-level keys: {sorted(h5_file.keys())[:10]})"
            )
        metadata = read_trajectory_metadata(path)
        if metadata is not None and "episodes" in metadata:
            listed_ids = [int(episode["episode_id"]) for episode in metadata["episodes"]]
            missing = sorted(set(listed_ids) - set(episode_ids))
            if missing:
                raise NotAManiSkillTrajectoryError(
                    f"{path}: the JSON file lists episodes {missing[:10]} that have no traj_* group in the HDF5 file"
                )
            episode_ids = listed_ids
        if num_episodes is not None:
            episode_ids = episode_ids[:num_episodes]
        return [_read_episode(h5_file, path, episode_id) for episode_id in episode_ids]


def _read_episode(h5_file, path: Path, episode_id: int) -> Demonstration:
    import h5py

    group_name = f"traj_{episode_id}"
    group = h5_file[group_name]
    if not isinstance(group, h5py.Group):
        raise NotAManiSkillTrajectoryError(f"{path}: {group_name} is not an HDF5 group")
    for key in ("actions", "obs"):
        if key not in group:
            hint = " (replay it with ManiSkill's replay_trajectory -o state to add state observations)" if key == "obs" else ""
            raise NotAManiSkillTrajectoryError(
                f"{path}: not a ManiSkill trajectory with state observations, {group_name} has no '{key}' "
                f"(keys: {sorted(group.keys())}){hint}"
            )
    if not isinstance(group["obs"], h5py.Dataset):
        raise NotAManiSkillTrajectoryError(
            f"{path}: {group_name}/obs is a group (dict observations, e.g. obs_mode state_dict or rgb); "
            "this loader reads flat state observations (replay_trajectory -o state)"
        )
    try:
        return Demonstration(observations=group["obs"][()], actions=group["actions"][()], episode_id=episode_id)
    except ValueError as error:
        raise NotAManiSkillTrajectoryError(f"{path}: {group_name}: {error}") from error


def slice_indices(num_steps: int, obs_horizon: int, action_horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays of the training pairs of one episode with ``num_steps`` actions.

    Returns ``(observation_index, action_index)`` of shapes ``(num_steps, obs_horizon)`` and
    ``(num_steps, action_horizon)``: row ``t`` holds ``max(0, t - obs_horizon + 1 + k)`` and
    ``min(num_steps - 1, t + k)``, the boundary-padded windows of the module doc.
    """
    if obs_horizon < 1 or action_horizon < 1:
        raise ValueError(f"horizons must be >= 1, got obs_horizon={obs_horizon}, action_horizon={action_horizon}")
    steps = np.arange(num_steps)[:, None]
    observation_index = np.maximum(steps + np.arange(1 - obs_horizon, 1), 0)
    action_index = np.minimum(steps + np.arange(action_horizon), num_steps - 1)
    return observation_index, action_index


class TrainingPairs:
    """(observation history, action chunk) pairs of a set of demonstrations.

    ``pairs[i]`` is ``(obs_history, action_chunk)`` of shapes ``(obs_horizon, obs_dim)`` and
    ``(action_horizon, action_dim)`` (float32), so the object serves as a map-style
    ``torch.utils.data.Dataset``; :meth:`arrays` returns all of them stacked. Windows are
    gathered on access from the episodes' concatenated arrays (no copy per pair is stored).

    Arguments:
        demonstrations: episodes with equal observation and action dimensions.
        obs_horizon: ``T_o``, observations per history (the current one and ``T_o - 1`` before).
        action_horizon: ``T_a``, actions per chunk (the current one and ``T_a - 1`` after).
    """

    def __init__(self, demonstrations: list[Demonstration], obs_horizon: int, action_horizon: int):
        if not demonstrations:
            raise ValueError("no demonstrations")
        obs_dims = {demo.observations.shape[1] for demo in demonstrations}
        action_dims = {demo.actions.shape[1] for demo in demonstrations}
        if len(obs_dims) != 1 or len(action_dims) != 1:
            raise ValueError(f"demonstrations differ in dimensions: observations {sorted(obs_dims)}, actions {sorted(action_dims)}")
        self.obs_horizon, self.action_horizon = obs_horizon, action_horizon
        self.obs_dim, self.action_dim = obs_dims.pop(), action_dims.pop()
        observation_indices, action_indices = [], []
        observation_offset = action_offset = 0
        for demo in demonstrations:
            observation_index, action_index = slice_indices(demo.num_steps, obs_horizon, action_horizon)
            observation_indices.append(observation_index + observation_offset)
            action_indices.append(action_index + action_offset)
            observation_offset += demo.observations.shape[0]
            action_offset += demo.num_steps
        self.observations = np.concatenate([demo.observations for demo in demonstrations]).astype(np.float32)
        self.actions = np.concatenate([demo.actions for demo in demonstrations]).astype(np.float32)
        self.observation_index = np.concatenate(observation_indices)
        self.action_index = np.concatenate(action_indices)

    @classmethod
    def from_file(cls, h5_path: str | Path, obs_horizon: int, action_horizon: int, num_episodes: int | None = None) -> TrainingPairs:
        """Reads a ManiSkill trajectory file (see :func:`load_demonstrations`) and slices it."""
        return cls(load_demonstrations(h5_path, num_episodes), obs_horizon, action_horizon)

    def __len__(self) -> int:
        return self.observation_index.shape[0]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.observations[self.observation_index[index]], self.actions[self.action_index[index]]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All pairs: ``(num_pairs, obs_horizon, obs_dim)`` and ``(num_pairs, action_horizon, action_dim)``."""
        return self.observations[self.observation_index], self.actions[self.action_index]
