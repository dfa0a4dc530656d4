r"""The baseline: a state-based Diffusion Policy (Chi et al. 2023), as ManiSkill's baseline runs it.

A 1-D temporal U-Net :math:`\epsilon_\theta(a^k, k, o)` over the action chunk (channels = action
coordinates, length = prediction horizon :math:`T_p`) with FiLM conditioning: every residual block
maps the diffusion-step embedding concatenated with the flattened observation history to a
per-channel scale and bias, :math:`h \mapsto \gamma(c)\,h + \beta(c)`.  Training minimizes the
DDPM noise-prediction loss

.. math::

    \mathcal L_\text{DP} = \mathbb E_{k, \epsilon}\,
      \lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_k}\,a + \sqrt{1-\bar\alpha_k}\,\epsilon,\ k,\ o)\rVert^2;

sampling runs the reverse chain from :math:`\mathcal N(0, I)` with diffusers'
:class:`~diffusers.DDPMScheduler` (squared-cosine schedule, 100 steps, samples clipped to
:math:`[-1, 1]`, ManiSkill's baseline settings).  Building blocks come from diffusers
(``Conv1dBlock`` = Conv1d + GroupNorm + Mish, ``Downsample1D``, ``Upsample1D``, ``Timesteps``);
only the FiLM residual block and the U-Net wiring are written here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ConditionalUnet1D", "DiffusionPolicy", "unet_dims_matching"]


class FiLMResidualBlock1D(nn.Module):
    """Two ``Conv1dBlock`` s; the condition scales and shifts the first one's output per channel."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int = 5, groups: int = 8):
        super().__init__()
        from diffusers.models.resnet import Conv1dBlock

        self.blocks = nn.ModuleList([Conv1dBlock(in_channels, out_channels, kernel_size, groups),
                                     Conv1dBlock(out_channels, out_channels, kernel_size, groups)])
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.residual = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.blocks[1](scale * self.blocks[0](x) + bias)
        return h + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """Chi et al.'s conditional 1-D U-Net: ``forward(sample (B, T, A), timestep (B,), cond (B, C)) -> (B, T, A)``."""

    def __init__(self, action_dim: int, cond_dim: int, down_dims=(64, 128, 256), step_embed_dim: int = 64, kernel_size: int = 5, groups: int = 8):
        super().__init__()
        from diffusers.models.downsampling import Downsample1D
        from diffusers.models.embeddings import Timesteps
        from diffusers.models.upsampling import Upsample1D

        self.step_embedding = nn.Sequential(Timesteps(step_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0),
                                            nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
                                            nn.Linear(4 * step_embed_dim, step_embed_dim))
        cond_dim = cond_dim + step_embed_dim
        dims = [action_dim, *down_dims]
        block = lambda i, o: FiLMResidualBlock1D(i, o, cond_dim, kernel_size, groups)  # noqa: E731
        self.down = nn.ModuleList()
        for index, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = index == len(down_dims) - 1
            self.down.append(nn.ModuleList([block(fan_in, fan_out), block(fan_out, fan_out),
                                             nn.Identity() if last else Downsample1D(fan_out, use_conv=True)]))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()
        for fan_out, fan_in in zip(down_dims[:-1][::-1], down_dims[1:][::-1]):  # every level but the deepest upsamples
            self.up.append(nn.ModuleList([block(2 * fan_in, fan_out), block(fan_out, fan_out), Upsample1D(fan_out, use_conv_transpose=True)]))
        from diffusers.models.resnet import Conv1dBlock

        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, groups), nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, sample: Tensor, timestep: Tensor, cond: Tensor) -> Tensor:
        x = sample.transpose(1, 2)
        c = torch.cat([self.step_embedding(timestep.expand(sample.shape[0])), cond], dim=-1)
        skips = []
        for first, second, downsample in self.down:
            x = second(first(x, c), c)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, c)
        for first, second, upsample in self.up:
            x = upsample(second(first(torch.cat([x, skips.pop()], dim=1), c), c))
        return self.final(x).transpose(1, 2)


class DiffusionPolicy(nn.Module):
    """State-based Diffusion Policy: ``loss(obs, actions)`` and ``sample(obs)`` on normalized data.

    Arguments:
        obs_dim, action_dim, obs_horizon, action_horizon: as for the VAE (``action_horizon`` is the
            prediction horizon :math:`T_p`, 16 in ManiSkill's baseline; it must be divisible by
            :math:`2^{(\\text{len(down\\_dims)} - 1)}`).
        down_dims: U-Net widths (ManiSkill: 64, 128, 256).
        diffusion_steps: DDPM steps for training and sampling (100).
    """

    def __init__(self, obs_dim: int, action_dim: int, obs_horizon: int, action_horizon: int, down_dims=(64, 128, 256),
                 step_embed_dim: int = 64, diffusion_steps: int = 100):
        super().__init__()
        from diffusers import DDPMScheduler

        if action_horizon % (2 ** (len(down_dims) - 1)):
            raise ValueError(f"action_horizon={action_horizon} must be divisible by 2^(len(down_dims) - 1) = {2 ** (len(down_dims) - 1)} for the U-Net")
        self.config = dict(obs_dim=obs_dim, action_dim=action_dim, obs_horizon=obs_horizon, action_horizon=action_horizon,
                           down_dims=list(down_dims), step_embed_dim=step_embed_dim, diffusion_steps=diffusion_steps)
        self.unet = ConditionalUnet1D(action_dim, obs_dim * obs_horizon, down_dims, step_embed_dim)
        self.scheduler = DDPMScheduler(num_train_timesteps=diffusion_steps, beta_schedule="squaredcos_cap_v2",
                                       clip_sample=True, prediction_type="epsilon")

    def _check(self, obs: Tensor, actions: Tensor | None = None):
        c = self.config
        if obs.dim() != 3 or tuple(obs.shape[1:]) != (c["obs_horizon"], c["obs_dim"]):
            raise ValueError(f"observation histories must have shape (batch, {c['obs_horizon']}, {c['obs_dim']}), got {tuple(obs.shape)}")
        if actions is not None and (actions.dim() != 3 or tuple(actions.shape[1:]) != (c["action_horizon"], c["action_dim"])):
            raise ValueError(f"action chunks must have shape (batch, {c['action_horizon']}, {c['action_dim']}), got {tuple(actions.shape)}")

    def loss(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, dict]:
        """The noise-prediction loss of the module doc; returns ``(loss, parts)``."""
        self._check(obs, actions)
        noise = torch.randn_like(actions)
        steps = torch.randint(0, self.scheduler.config.num_train_timesteps, (actions.shape[0],), device=actions.device)
        noisy = self.scheduler.add_noise(actions, noise, steps)
        loss = F.mse_loss(self.unet(noisy, steps, obs.flatten(1)), noise)
        return loss, {"noise_mse": loss.detach()}

    @torch.no_grad()
    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Normalized action chunks (B, T_p, action_dim) by the full reverse DDPM chain."""
        self._check(obs)
        c = self.config
        cond = obs.flatten(1)
        x = torch.randn((obs.shape[0], c["action_horizon"], c["action_dim"]), generator=generator, device=obs.device)
        self.scheduler.set_timesteps(c["diffusion_steps"])
        for step in self.scheduler.timesteps:
            x = self.scheduler.step(self.unet(x, step.to(obs.device), cond), step, x, generator=generator).prev_sample
        return x


def unet_dims_matching(target_params: int, obs_dim: int, action_dim: int, obs_horizon: int, action_horizon: int,
                       levels: int = 3) -> tuple[int, ...]:
    """U-Net widths ``(w, 2w, 4w, ...)`` (``w`` a multiple of 8) whose parameter count is closest to ``target_params``."""
    best, best_gap = None, None
    for width in range(8, 1025, 8):
        dims = tuple(width * 2**i for i in range(levels))
        count = sum(p.numel() for p in DiffusionPolicy(obs_dim, action_dim, obs_horizon, action_horizon, dims).parameters())
        gap = abs(count - target_params)
        if best_gap is not None and gap > best_gap:
            break
        best, best_gap = dims, gap
    return best
