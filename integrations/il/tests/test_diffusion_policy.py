"""The Diffusion Policy baseline: U-Net shapes, DDPM loss and sampling, parameter matching."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers", reason="diffusers is not installed (pip install -e integrations/il)")

from mepoly_il.diffusion_policy import DiffusionPolicy, unet_dims_matching  # noqa: E402


def test_loss_and_sampling_shapes():
    model = DiffusionPolicy(obs_dim=5, action_dim=3, obs_horizon=2, action_horizon=16, down_dims=(16, 32, 64), diffusion_steps=10)
    obs, actions = torch.randn(4, 2, 5), torch.rand(4, 16, 3) * 2 - 1
    loss, parts = model.loss(obs, actions)
    loss.backward()
    assert torch.isfinite(loss) and "noise_mse" in parts
    sample = model.sample(obs, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (4, 16, 3) and sample.abs().max() <= 1.0


def test_parameter_count_matching():
    target = 300_000
    dims = unet_dims_matching(target, obs_dim=5, action_dim=3, obs_horizon=2, action_horizon=16)
    count = sum(p.numel() for p in DiffusionPolicy(5, 3, 2, 16, dims).parameters())
    assert abs(count - target) / target < 0.2 and dims[1] == 2 * dims[0]


def test_bad_horizon_is_named():
    with pytest.raises(ValueError, match="divisible"):
        DiffusionPolicy(5, 3, 2, 10, down_dims=(16, 32, 64))
    with pytest.raises(ValueError, match="action chunks must have shape"):
        DiffusionPolicy(5, 3, 2, 16, down_dims=(16, 32, 64)).loss(torch.zeros(2, 2, 5), torch.zeros(2, 8, 3))
