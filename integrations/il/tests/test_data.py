"""Slicing into (observation history, action chunk) pairs with boundary padding, and normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_demos import write_trajectory_file

from mepoly_il.data import Normalization, load_pairs


def test_pairs_shapes_and_boundary_padding(tmp_path):
    path = write_trajectory_file(tmp_path / "t.h5", [5, 7], obs_dim=3, action_dim=2)
    pairs = load_pairs(path, obs_horizon=2, action_horizon=4)
    assert len(pairs) == 5 + 7 and pairs.num_demos == 2
    assert pairs.obs.shape == (12, 2, 3) and pairs.actions.shape == (12, 4, 2)
    raw_obs = pairs.normalization.obs_mean + pairs.obs * pairs.normalization.obs_std
    raw_actions = pairs.normalization.denormalize_actions(pairs.actions)
    import h5py

    with h5py.File(path) as file:
        obs0, actions0 = file["traj_0/obs"][()], file["traj_0/actions"][()]
        obs1 = file["traj_1/obs"][()]
    # first step of an episode: the first observation repeated
    np.testing.assert_allclose(raw_obs[0].numpy(), obs0[[0, 0]], atol=1e-5)
    np.testing.assert_allclose(raw_obs[5].numpy(), obs1[[0, 0]], atol=1e-5)
    np.testing.assert_allclose(raw_obs[1].numpy(), obs0[[0, 1]], atol=1e-5)
    # last step: the last action repeated to fill the chunk; never the next episode's actions
    np.testing.assert_allclose(raw_actions[4].numpy(), actions0[[4, 4, 4, 4]], atol=1e-5)
    np.testing.assert_allclose(raw_actions[2].numpy(), actions0[[2, 3, 4, 4]], atol=1e-5)


def test_normalization_maps_actions_into_the_box_and_back(tmp_path):
    pairs = load_pairs(write_trajectory_file(tmp_path / "t.h5", [20, 30], obs_dim=4, action_dim=3), 2, 8)
    assert pairs.actions.min() >= -1.0 - 1e-6 and pairs.actions.max() <= 1.0 + 1e-6
    assert torch.allclose(pairs.obs.flatten(0, 1).mean(0), torch.zeros(4), atol=0.2)
    state = Normalization.from_state_dict(pairs.normalization.state_dict())
    x = torch.randn(5, 3)
    assert torch.allclose(state.denormalize_actions(state.normalize_actions(x)), x, atol=1e-5)


def test_constant_coordinates_keep_unit_scale():
    obs = np.zeros((10, 2), np.float32)
    actions = np.ones((10, 1), np.float32)
    normalization = Normalization.from_arrays(obs, actions)
    assert torch.equal(normalization.obs_std, torch.ones(2))
    assert torch.isfinite(normalization.normalize_actions(torch.ones(1))).all()


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="NaN or inf"):
        Normalization.from_arrays(np.full((3, 2), np.nan), np.zeros((3, 1)))
    with pytest.raises(FileNotFoundError, match="no such trajectory file"):
        load_pairs(tmp_path / "missing.h5", 2, 4)
