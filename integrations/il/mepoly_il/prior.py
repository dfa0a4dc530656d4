r"""Stage 2: the MePoly prior on the latent cube (paper eq. 14, 17-19).

A prior network maps the flattened (normalized) observation history to the natural parameters
of a MePoly density on :math:`[-1, 1]^{d_z}` (eq. 17),

.. math::

    p_\psi(z \mid o) = \exp\big(\lambda_\psi(o)^\top \phi(z) - A(\lambda_\psi(o))\big),

with :math:`\phi` all Legendre products of total degree :math:`\le n` (a
:class:`mepoly_dist.MePolyFamily`; the log-partition, entropy and sampling of eq. 18 are that
package's quadrature-based ones).  The network is an MLP with ReLU (the observation encoder,
``net``) followed by :class:`mepoly_dist.MePolyHead`, the linear layer to :math:`\lambda` that
returns the density: it starts at zero (the uniform density) and clips :math:`\lambda`
elementwise to :math:`[-c, c]` for numerical stability, smoothly (:math:`c \tanh(\cdot / c)`)
so that a clipped coordinate still has a gradient.  It predicts no coefficient for the constant
feature, which cancels between energy and log-partition.

Stage-2 objective (eq. 19), with :math:`z \sim q_\phi(z \mid a)` drawn from the frozen encoder
without gradient:

.. math::

    \mathcal L_\text{prior} = -\log p_\psi(z \mid o) - \alpha\, H[p_\psi(\cdot \mid o)]
      + \eta\, \lVert D_\theta(z, o) - a \rVert^2,

the last term the light reconstruction-consistency term that keeps the observation encoder and
decoder (which keep training, at a smaller learning rate with gradient clipping) consistent with
the codes the prior is fitted to.  The action encoder and its latent heads are frozen.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mepoly_dist import MePoly, MePolyFamily, MePolyHead

from .vae import TrajectoryVAE

__all__ = ["LatentPrior", "stage2_loss", "stage2_optimizer", "freeze_action_encoder", "decoder_parameters"]


class LatentPrior(nn.Module):
    """Observation history -> :class:`~mepoly_dist.MePoly` on :math:`[-1, 1]^{d_z}` (eq. 17).

    Arguments:
        obs_dim, obs_horizon: the flattened input has ``obs_dim * obs_horizon`` entries.
        latent_dim: :math:`d_z`.
        order: total degree :math:`n` of the polynomial.
        hidden: hidden sizes of the MLP (ReLU).
        quadrature: quadrature spec of the family (``None``: the default rule of ``latent_dim``).
        lambda_clip: :math:`c`, the bound of every natural parameter.
    """

    def __init__(self, obs_dim: int, obs_horizon: int, latent_dim: int, order: int, hidden=(512, 512),
                 quadrature: str | None = None, lambda_clip: float = 10.0):
        super().__init__()
        self.config = dict(obs_dim=obs_dim, obs_horizon=obs_horizon, latent_dim=latent_dim, order=order,
                           hidden=list(hidden), quadrature=quadrature, lambda_clip=lambda_clip)
        sizes = [obs_dim * obs_horizon, *hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.head = MePolyHead(sizes[-1], MePolyFamily(latent_dim, order, quadrature=quadrature), lambda_clip, clip_mode="tanh",
                               zero_init=True)
        self.register_load_state_dict_pre_hook(_map_single_network_state)

    @property
    def family(self) -> MePolyFamily:
        return self.head.family

    def _encode(self, obs: Tensor) -> Tensor:
        expected = (self.config["obs_horizon"], self.config["obs_dim"])
        if obs.dim() != 3 or tuple(obs.shape[1:]) != expected:
            raise ValueError(f"observation histories must have shape (batch, {expected[0]}, {expected[1]}), got {tuple(obs.shape)}")
        return self.net(obs.flatten(1))

    def natural_params(self, obs: Tensor) -> Tensor:
        r""":math:`\lambda_\psi(o)`, shape (B, F), from normalized histories (B, T_o, obs_dim)."""
        return self.head.natural_params(self._encode(obs))

    def forward(self, obs: Tensor) -> MePoly:
        return self.head(self._encode(obs))


def _map_single_network_state(prior: LatentPrior, state_dict: dict, prefix: str, *args) -> None:
    r"""Priors saved before the head was :class:`mepoly_dist.MePolyHead` (f86e187 and earlier) kept the last
    layer in ``net`` with a row for the constant feature too; that row never changes the density
    (it adds the same :math:`\lambda_0` to the energy and the log-partition), so it is dropped."""
    last = f"{prefix}net.{len(prior.net)}."
    if last + "weight" in state_dict:
        for name in ("weight", "bias"):
            state_dict[f"{prefix}head.linear.{name}"] = state_dict.pop(last + name)[prior.head.free_index.cpu()]


def freeze_action_encoder(vae: TrajectoryVAE) -> None:
    """Stage 2 freezes the action encoder and its latent heads (appendix A)."""
    for module in (vae.action_embedding, vae.action_encoder, vae.mu_head, vae.log_sigma_head):
        module.requires_grad_(False)
    vae.action_position.requires_grad_(False)


def decoder_parameters(vae: TrajectoryVAE) -> list[nn.Parameter]:
    """What keeps training in stage 2: the observation encoder, the decoder and its action head."""
    modules = (vae.obs_embedding, vae.obs_encoder, vae.decoder_blocks, vae.final_norm, vae.action_head)
    return [vae.obs_position, vae.query_position] + [p for module in modules for p in module.parameters()]


def stage2_optimizer(vae: TrajectoryVAE, prior: LatentPrior, lr: float, decoder_lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the prior (``lr``) and the observation encoder + decoder (the smaller ``decoder_lr``)."""
    if decoder_lr > lr:
        raise ValueError(f"decoder_lr ({decoder_lr}) should not exceed the prior's lr ({lr}): stage 2 only fine-tunes the decoder")
    freeze_action_encoder(vae)
    return torch.optim.AdamW([
        {"params": list(prior.parameters()), "lr": lr},
        {"params": decoder_parameters(vae), "lr": decoder_lr},
    ], weight_decay=weight_decay)


def stage2_loss(vae: TrajectoryVAE, prior: LatentPrior, obs: Tensor, actions: Tensor, entropy_coef: float,
                reconstruction_weight: float) -> tuple[Tensor, dict]:
    """Eq. 19 on a minibatch of normalized pairs; returns ``(loss, parts)``."""
    with torch.no_grad():
        z = vae.sample_latent(actions)
    dist = prior(obs)
    nll = -dist.log_prob(z).mean()
    entropy = dist.entropy().mean()
    loss = nll - entropy_coef * entropy
    reconstruction = torch.zeros((), device=obs.device)
    if reconstruction_weight > 0:
        reconstruction = F.mse_loss(vae.decode(z, vae.encode_obs(obs)), actions)
        loss = loss + reconstruction_weight * reconstruction
    return loss, {"nll": nll.detach(), "entropy": entropy.detach(), "reconstruction": reconstruction.detach()}
