"""Stage 1: the trajectory VAE (appendix A) overfits a tiny synthetic set; its latent stays in the prior's box."""

from __future__ import annotations

import pytest
import torch

from mepoly_il.vae import TrajectoryVAE, stress_loss

#: stated bound: reconstruction MSE (normalized actions, which have variance ~0.3 here) after 300 steps
OVERFIT_BOUND = 0.01


def _tiny(**kwargs):
    return TrajectoryVAE(obs_dim=3, action_dim=2, obs_horizon=2, action_horizon=8, latent_dim=2, d_model=32, heads=2,
                         encoder_layers=1, obs_layers=1, decoder_layers=1, **kwargs)


def _synthetic(n=32):
    """Two modes per observation: a chunk going up or down, chosen at random; the latent must carry the choice."""
    generator = torch.Generator().manual_seed(0)
    obs = torch.randn(n, 2, 3, generator=generator)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    time = torch.linspace(0, 1, 8)
    actions = torch.stack([sign[:, None] * time, 0.5 * obs[:, -1, :1] * (1 - time)], dim=-1) * 0.8
    return obs, actions


def test_vae_overfits_a_tiny_dataset():
    torch.manual_seed(0)
    vae = _tiny()
    obs, actions = _synthetic()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    for _ in range(300):
        loss, parts = vae.loss(obs, actions, beta=1e-4, stress_weight=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vae.eval()
    with torch.no_grad():
        mu, _ = vae.encode(actions)
        reconstruction = torch.nn.functional.mse_loss(vae.decode(vae.squash(mu), vae.encode_obs(obs)), actions)
    assert reconstruction < OVERFIT_BOUND, f"reconstruction {reconstruction:.4f} >= {OVERFIT_BOUND}"


def test_latent_lies_in_the_prior_box_and_mass_is_measured():
    vae = _tiny(latent_radius=0.9)
    _, actions = _synthetic()
    with torch.no_grad():
        vae.mu_head[-1].bias.fill_(5.0)  # push the encoder far out: tanh keeps every code inside
        z = vae.sample_latent(actions)
    assert z.abs().max() <= 0.9
    stats = vae.latent_statistics(actions)
    assert stats["outside_support"] == 0.0 and stats["saturated"] > 0.9 and stats["outside_unsquashed"] > 0.9


def test_adaln_starts_at_zero_so_the_decoder_ignores_z_at_initialisation():
    vae = _tiny()
    obs, _ = _synthetic(4)
    memory = vae.encode_obs(obs)
    assert torch.allclose(vae.decode(torch.zeros(4, 2), memory), vae.decode(torch.ones(4, 2) * 0.7, memory))


def test_stress_is_zero_for_a_similarity_and_positive_otherwise():
    x = torch.randn(10, 8, 2)
    z = x.flatten(1)[:, :3]
    assert stress_loss(x, 3.0 * x.flatten(1)) < 1e-10
    assert stress_loss(x, torch.randn(10, 3)) > 1e-3 and torch.isfinite(stress_loss(x, z))


def test_shape_errors_name_the_problem():
    vae = _tiny()
    with pytest.raises(ValueError, match=r"actions must have shape \(batch, 8, 2\)"):
        vae.encode(torch.zeros(4, 7, 2))
    with pytest.raises(ValueError, match="latent_radius"):
        _tiny(latent_radius=1.5)
    with pytest.raises(ValueError, match="divisible"):
        TrajectoryVAE(3, 2, 2, 8, d_model=30, heads=4)
