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


def test_ema_warmup_average_is_diffusers_emamodel():
    """The reference preset's weight average, through torch's AveragedModel, follows diffusers' EMAModel as
    ManiSkill's baseline builds it (``EMAModel(parameters, power=0.75)``: decay min(0.9999, t / (t + 9)) at the
    t-th update) over a run of random weight updates."""
    from diffusers.training_utils import EMAModel
    from torch.optim.swa_utils import AveragedModel

    from mepoly_il.train import ema_warmup_multi_avg_fn

    model = torch.nn.Linear(3, 2)
    ours = AveragedModel(model, multi_avg_fn=ema_warmup_multi_avg_fn(0.9999))
    theirs = EMAModel(model.parameters(), power=0.75)
    for _ in range(40):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        ours.update_parameters(model)
        theirs.step(model.parameters())
    for mean, reference in zip(ours.module.parameters(), theirs.shadow_params):
        torch.testing.assert_close(mean, reference, rtol=1e-6, atol=1e-6)
    # a small cap binds: with max_decay 0.5 the average moves half-way at every update after the first two
    capped = AveragedModel(model, multi_avg_fn=ema_warmup_multi_avg_fn(0.5))
    start = [p.detach().clone() for p in model.parameters()]
    capped.update_parameters(model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    capped.update_parameters(model)  # t = 2: decay min(0.5, 2 / 11) = 2 / 11
    for mean, before in zip(capped.module.parameters(), start):
        torch.testing.assert_close(mean, before + 9 / 11)


def test_reference_preset_builds_maniskills_unet():
    """The reference preset's DP is ManiSkill's baseline network (widths 64-128-256, "about 4.5M parameters" in its
    train.py) and trains with its batch, learning rate, betas and iteration counts."""
    from mepoly_il.train import build_models, load_preset

    config = {**load_preset("reference", "PickCube-v1"), "method": "dp"}
    (model,) = build_models(config, obs_dim=42, action_dim=4)
    count = sum(p.numel() for p in model.parameters())
    assert model.config["down_dims"] == [64, 128, 256] and 4.0e6 < count < 5.0e6
    train = config["dp"]["train"]
    assert (train["steps"], train["batch_size"], train["lr"], tuple(train["betas"]), train["warmup"]) == (30000, 1024, 1e-4, (0.95, 0.999), 500)
    assert load_preset("reference", "PushT-v1")["dp"]["train"]["steps"] == 50000
