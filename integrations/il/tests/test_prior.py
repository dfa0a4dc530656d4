"""Stage 2: the MePoly prior (eq. 17, 19) overfits a tiny set and beats a Gaussian prior on a multi-modal latent set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mepoly_il.prior import LatentPrior, stage2_loss, stage2_optimizer
from mepoly_il.vae import TrajectoryVAE

#: stated bound on the overfit NLL of four tight clusters (the uniform density on [-1, 1]^2 has log 4 = 1.39)
PRIOR_OVERFIT_NLL = 0.0


def _four_clusters(n, generator):
    """Latent codes in four clusters (std 0.05) at (+-0.6, +-0.6), the same observation for all: a multi-modal p(z | o)."""
    centres = torch.tensor([[0.6, 0.6], [-0.6, 0.6], [0.6, -0.6], [-0.6, -0.6]])
    z = centres[torch.randint(0, 4, (n,), generator=generator)] + 0.05 * torch.randn(n, 2, generator=generator)
    return z.clamp(-0.99, 0.99)


class GaussianPrior(nn.Module):
    """The baseline: the same MLP predicting a diagonal Gaussian's mean and log std."""

    def __init__(self, obs_dim, obs_horizon, latent_dim, hidden=(64, 64)):
        super().__init__()
        sizes = [obs_dim * obs_horizon, *hidden]
        layers = [m for a, b in zip(sizes[:-1], sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 2 * latent_dim))

    def forward(self, obs):
        mean, log_std = self.net(obs.flatten(1)).chunk(2, dim=-1)
        return torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)


def _fit(model, obs, z, steps=300, lr=1e-2):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = -model(obs).log_prob(z).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def test_mepoly_prior_overfits_and_beats_a_gaussian_prior_on_multimodal_latents():
    generator = torch.Generator().manual_seed(0)
    train_z, test_z = _four_clusters(512, generator), _four_clusters(512, generator)
    obs = torch.zeros(512, 2, 3)
    torch.manual_seed(0)
    mepoly = LatentPrior(obs_dim=3, obs_horizon=2, latent_dim=2, order=10, hidden=(64, 64), quadrature="gauss_legendre:40")
    gaussian = GaussianPrior(3, 2, 2)
    train_nll = _fit(mepoly, obs, train_z)
    _fit(gaussian, obs, train_z)
    with torch.no_grad():
        mepoly_ll = mepoly(obs).log_prob(test_z).mean().item()
        gaussian_ll = gaussian(obs).log_prob(test_z).mean().item()
    assert train_nll < PRIOR_OVERFIT_NLL, f"MePoly prior NLL {train_nll:.3f} >= {PRIOR_OVERFIT_NLL}"
    assert mepoly_ll > gaussian_ll + 0.5, f"MePoly {mepoly_ll:.3f} vs Gaussian {gaussian_ll:.3f} nats per code"
    # the uniform density is the prior at initialisation (zero last layer)
    fresh = LatentPrior(3, 2, 2, order=4)
    assert torch.allclose(fresh(obs[:2]).log_prob(torch.zeros(2, 2)), torch.full((2,), -math.log(4.0)), atol=1e-4)


def test_stage2_freezes_the_action_encoder_and_updates_prior_and_decoder():
    torch.manual_seed(0)
    vae = TrajectoryVAE(3, 2, 2, 8, latent_dim=2, d_model=32, heads=2, encoder_layers=1, obs_layers=1, decoder_layers=1)
    prior = LatentPrior(3, 2, 2, order=6, hidden=(32,), quadrature="gauss_legendre:16")
    optimizer = stage2_optimizer(vae, prior, lr=1e-3, decoder_lr=1e-4, weight_decay=0.0)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 1e-4]
    encoder_before = [p.clone() for p in vae.action_encoder.parameters()]
    decoder_before = vae.action_head.weight.clone()
    obs, actions = torch.randn(16, 2, 3), torch.rand(16, 8, 2) * 2 - 1
    for _ in range(3):
        loss, parts = stage2_loss(vae, prior, obs, actions, entropy_coef=1e-3, reconstruction_weight=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert set(parts) == {"nll", "entropy", "reconstruction"} and torch.isfinite(loss)
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, vae.action_encoder.parameters()))
    assert not torch.equal(decoder_before, vae.action_head.weight)
    with pytest.raises(ValueError, match="should not exceed"):
        stage2_optimizer(vae, prior, lr=1e-4, decoder_lr=1e-3, weight_decay=0.0)


def test_prior_input_shape_error():
    prior = LatentPrior(3, 2, 2, order=4)
    with pytest.raises(ValueError, match=r"shape \(batch, 2, 3\)"):
        prior(torch.zeros(4, 3, 3))


def test_a_prior_saved_by_an_older_version_loads_with_the_same_density():
    """``data/prior_f86e187.pt``: a small prior (clip 2, perturbed weights) saved at commit f86e187 with
    ``torch.save({"config", "state_dict", "obs", "z", "log_prob"})``, as ``mepoly_il.train`` saves it."""
    saved = torch.load(Path(__file__).parent / "data" / "prior_f86e187.pt", weights_only=True)
    prior = LatentPrior(**saved["config"])
    prior.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(prior(saved["obs"]).log_prob(saved["z"]), saved["log_prob"], rtol=1e-5, atol=1e-5)
        # eq. 17's lambda by hand from the saved single MLP: c tanh(W2 relu(W1 o + b1) + b2) / c), lambda_0 set to 0
        state, c = {k: v.double().numpy() for k, v in saved["state_dict"].items()}, saved["config"]["lambda_clip"]
        hidden = np.maximum(saved["obs"].flatten(1).double().numpy() @ state["net.0.weight"].T + state["net.0.bias"], 0)
        expected = c * np.tanh((hidden @ state["net.2.weight"].T + state["net.2.bias"]) / c)
        expected[:, 0] = 0.0
        np.testing.assert_allclose(prior.natural_params(saved["obs"]).numpy(), expected, rtol=1e-5, atol=1e-5)
