"""Slicing into (observation history, action chunk) pairs and reading trajectory files (no ManiSkill needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mepoly_maniskill.dataset import Demonstration, NotAManiSkillTrajectoryError, TrainingPairs, load_demonstrations, slice_indices


def _demo(num_steps: int, obs_dim: int = 3, action_dim: int = 2, episode_id: int = 0, offset: float = 0.0) -> Demonstration:
    """Observation k is (k, k, ...) + offset, action k is -(k, k, ...) - offset: values name their step."""
    observations = offset + np.repeat(np.arange(num_steps + 1, dtype=float)[:, None], obs_dim, axis=1)
    actions = -offset - np.repeat(np.arange(num_steps, dtype=float)[:, None], action_dim, axis=1)
    return Demonstration(observations=observations, actions=actions, episode_id=episode_id)


@pytest.mark.parametrize("num_steps, obs_horizon, action_horizon", [(1, 1, 1), (1, 3, 4), (5, 2, 8), (9, 4, 3), (16, 2, 16)])
def test_slice_indices_match_clamped_windows(num_steps, obs_horizon, action_horizon):
    observation_index, action_index = slice_indices(num_steps, obs_horizon, action_horizon)
    assert observation_index.shape == (num_steps, obs_horizon) and action_index.shape == (num_steps, action_horizon)
    for t in range(num_steps):
        assert observation_index[t].tolist() == [max(0, t - obs_horizon + 1 + k) for k in range(obs_horizon)]
        assert action_index[t].tolist() == [min(num_steps - 1, t + k) for k in range(action_horizon)]


def test_pairs_shapes_and_boundary_padding():
    pairs = TrainingPairs([_demo(5)], obs_horizon=3, action_horizon=4)
    assert len(pairs) == 5
    obs_history, action_chunk = pairs[0]
    assert obs_history.shape == (3, 3) and action_chunk.shape == (4, 2) and obs_history.dtype == np.float32
    # the history before the first step repeats the first observation
    assert obs_history[:, 0].tolist() == [0, 0, 0]
    assert action_chunk[:, 0].tolist() == [0, -1, -2, -3]
    # in the middle nothing is padded
    obs_history, action_chunk = pairs[2]
    assert obs_history[:, 0].tolist() == [0, 1, 2] and action_chunk[:, 0].tolist() == [-2, -3, -4, -4]
    # the chunk past the last action repeats the last action; the final observation (index 5) is never a history frame
    obs_history, action_chunk = pairs[4]
    assert obs_history[:, 0].tolist() == [2, 3, 4] and action_chunk[:, 0].tolist() == [-4, -4, -4, -4]


def test_pairs_never_cross_episodes():
    demos = [_demo(3, episode_id=0, offset=0.0), _demo(4, episode_id=1, offset=100.0)]
    pairs = TrainingPairs(demos, obs_horizon=4, action_horizon=5)
    obs_histories, action_chunks = pairs.arrays()
    assert obs_histories.shape == (7, 4, 3) and action_chunks.shape == (7, 5, 2)
    assert np.all(obs_histories[:3] < 50) and np.all(action_chunks[:3] > -50)
    assert np.all(obs_histories[3:] >= 100) and np.all(action_chunks[3:] <= -100)
    assert obs_histories[3, :, 0].tolist() == [100] * 4
    assert action_chunks[-1, :, 0].tolist() == [-103] * 5
    for index in range(len(pairs)):
        np.testing.assert_array_equal(pairs[index][0], obs_histories[index])
        np.testing.assert_array_equal(pairs[index][1], action_chunks[index])


def test_demonstration_shape_checks():
    with pytest.raises(ValueError, match="observations for 4 actions"):
        Demonstration(observations=np.zeros((7, 3)), actions=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="2-d"):
        Demonstration(observations=np.zeros((5,)), actions=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="differ in dimensions"):
        TrainingPairs([_demo(3, obs_dim=3), _demo(3, obs_dim=4)], 2, 2)
    with pytest.raises(ValueError, match="horizons"):
        slice_indices(5, 0, 2)


def _write_trajectory(path, episodes: dict, with_json: bool = True):
    """A ManiSkill-layout file: traj_<id> groups holding the given datasets, plus the JSON episode list."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as h5_file:
        for episode_id, datasets in episodes.items():
            group = h5_file.create_group(f"traj_{episode_id}")
            for name, value in datasets.items():
                group.create_dataset(name, data=value)
    if with_json:
        metadata = {
            "env_info": {"env_id": "Fake-v1", "env_kwargs": {"obs_mode": "state", "control_mode": "pd_ee_delta_pos"}},
            "episodes": [{"episode_id": episode_id, "control_mode": "pd_ee_delta_pos"} for episode_id in episodes],
        }
        path.with_suffix(".json").write_text(json.dumps(metadata))
    return path


def test_reads_a_maniskill_layout_file(tmp_path):
    demos = {1: _demo(6, offset=10.0), 0: _demo(4)}  # JSON order (1, 0) wins over id order
    path = _write_trajectory(tmp_path / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5", {
        episode_id: {"obs": demo.observations, "actions": demo.actions, "success": np.ones(demo.num_steps, bool)}
        for episode_id, demo in demos.items()
    })
    loaded = load_demonstrations(path)
    assert [demo.episode_id for demo in loaded] == [1, 0]
    np.testing.assert_array_equal(loaded[0].observations, demos[1].observations)
    pairs = TrainingPairs.from_file(path, obs_horizon=2, action_horizon=8)
    assert len(pairs) == 10 and pairs.arrays()[0].shape == (10, 2, 3) and pairs.arrays()[1].shape == (10, 8, 2)
    assert len(TrainingPairs.from_file(path, 2, 8, num_episodes=1)) == 6


def test_rejects_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "trajectory.h5"
    path.write_text("episode,action\n0,0.1\n")
    pytest.importorskip("h5py")
    with pytest.raises(NotAManiSkillTrajectoryError, match="not an HDF5 file"):
        load_demonstrations(path)


def test_rejects_hdf5_without_episode_groups(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5_file:
        h5_file.create_dataset("actions", data=np.zeros((3, 2)))
    with pytest.raises(NotAManiSkillTrajectoryError, match=r"no traj_<episode id> groups.*'actions'"):
        load_demonstrations(path)


@pytest.mark.parametrize("missing", ["actions", "obs"])
def test_rejects_episodes_without_actions_or_observations(tmp_path, missing):
    demo = _demo(3)
    datasets = {"obs": demo.observations, "actions": demo.actions}
    del datasets[missing]
    path = _write_trajectory(tmp_path / "trajectory.h5", {0: datasets})
    with pytest.raises(NotAManiSkillTrajectoryError, match=f"traj_0 has no '{missing}'"):
        load_demonstrations(path)


def test_rejects_inconsistent_episodes(tmp_path):
    path = _write_trajectory(tmp_path / "a.h5", {0: {"obs": np.zeros((9, 3)), "actions": np.zeros((4, 2))}})
    with pytest.raises(NotAManiSkillTrajectoryError, match="traj_0: episode 0: 9 observations for 4 actions"):
        load_demonstrations(path)
    path = _write_trajectory(tmp_path / "b.h5", {0: {"obs": np.zeros((5, 3)), "actions": np.zeros((4, 2))}})
    metadata = json.loads(path.with_suffix(".json").read_text())
    metadata["episodes"].append({"episode_id": 7})
    path.with_suffix(".json").write_text(json.dumps(metadata))
    with pytest.raises(NotAManiSkillTrajectoryError, match=r"lists episodes \[7\]"):
        load_demonstrations(path)
