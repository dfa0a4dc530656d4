r"""Inference: an observation history -> an action chunk, executed with a receding horizon.

:class:`MePolyChunkPolicy` (paper section 4.2): the prior gives :math:`p_\psi(z \mid o)`; one
sample (or its mode) :math:`z` goes through the decoder, :math:`\hat a = D_\theta(z, o)` -- a single
network pass, no iterative denoising.  :class:`DiffusionChunkPolicy`: the full reverse DDPM chain.
Both take raw observations and return raw actions (the stored :class:`~mepoly_il.data.Normalization`
maps both ways).

:class:`RecedingHorizonController` keeps the last :math:`T_o` observations (the first one repeated
at the start of an episode, as in training), asks the policy for a chunk when its queue of actions
is empty and executes the first ``act_horizon`` actions of every chunk before replanning.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import torch
from torch import Tensor, nn

from .data import Normalization

__all__ = ["GridSampler", "MePolyChunkPolicy", "DiffusionChunkPolicy", "RecedingHorizonController", "measure_latency"]


class _ChunkPolicy(nn.Module):
    normalization: Normalization

    @property
    def obs_horizon(self) -> int:
        return self.config["obs_horizon"]

    @property
    def action_horizon(self) -> int:
        return self.config["action_horizon"]

    def _normalized(self, obs_history) -> Tensor:
        obs = torch.as_tensor(np.asarray(obs_history, dtype=np.float32))
        if obs.dim() == 2:
            obs = obs.unsqueeze(0)
        expected = (self.obs_horizon, self.normalization.obs_dim)
        if obs.dim() != 3 or tuple(obs.shape[1:]) != expected:
            raise ValueError(f"observation history must have shape {expected} or (batch, {expected[0]}, {expected[1]}), got {tuple(obs.shape)}")
        return self.normalization.normalize_obs(obs.to(self.device))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict_chunk(self, obs_history) -> np.ndarray:
        """Raw actions (T_a, action_dim) for one raw history (T_o, obs_dim), or a batch of each."""
        obs = self._normalized(obs_history)
        chunk = self.normalization.denormalize_actions(self._chunk(obs)).cpu().numpy()
        return chunk[0] if np.asarray(obs_history).ndim == 2 else chunk


class GridSampler(nn.Module):
    r"""The paper's sampler (appendix A, "Log-partition, entropy, and sampling"): inverse-CDF on the
    discrete mass of a uniform grid, here with a uniform jitter inside the drawn cell.

    The cube is cut into ``points^d`` cells with centres :math:`x_i`; a cell is drawn with probability
    :math:`\propto \exp(\lambda^\top\phi(x_i))` (``torch.distributions.Categorical``), then a point
    uniformly inside it.  The mode is the most probable centre.  One matrix product per call:
    milliseconds for a batch of one, where :meth:`mepoly_dist.MePoly.sample` (exact, by adaptive
    rejection) and :attr:`~mepoly_dist.MePoly.mode` (Newton refinement) take 0.1-0.2 s here.
    """

    def __init__(self, family, points: int = 32):
        super().__init__()
        if points < 2:
            raise ValueError(f"a sampling grid needs at least 2 points per axis, got {points}")
        axis = (torch.arange(points, dtype=torch.float64) + 0.5) / points * 2.0 - 1.0
        centres = torch.cartesian_prod(*[axis] * family.dim).reshape(-1, family.dim).to(device=family.device, dtype=family.dtype)
        self.half_width = 1.0 / points
        self.register_buffer("centres", centres.float(), persistent=False)
        self.register_buffer("features", family.features(centres).float(), persistent=False)

    def forward(self, natural_params: Tensor, deterministic: bool = False) -> Tensor:
        logits = natural_params @ self.features.T
        if deterministic:
            return self.centres[logits.argmax(-1)]
        cells = torch.distributions.Categorical(logits=logits).sample()
        return self.centres[cells] + self.half_width * (2.0 * torch.rand(cells.shape + (self.centres.shape[-1],), device=self.centres.device) - 1.0)


class MePolyChunkPolicy(_ChunkPolicy):
    """Prior sample (``deterministic=False``) or prior mode -> decoder -> action chunk.

    ``sampler="grid"`` draws from the prior with :class:`GridSampler` (the paper's sampler);
    ``sampler="exact"`` uses :meth:`mepoly_dist.MePoly.sample` / :attr:`~mepoly_dist.MePoly.mode`.
    """

    def __init__(self, vae, prior, normalization: Normalization, deterministic: bool = False, sampler: str = "grid",
                 grid_points: int = 32):
        super().__init__()
        if sampler not in ("grid", "exact"):
            raise ValueError(f"unknown sampler {sampler!r}; expected 'grid' or 'exact'")
        self.vae, self.prior, self.normalization, self.deterministic = vae, prior, normalization, deterministic
        self.sampler = sampler
        self.grid = GridSampler(prior.family, grid_points) if sampler == "grid" else None
        self.config = vae.config

    def _chunk(self, obs: Tensor) -> Tensor:
        if self.grid is not None:
            z = self.grid(self.prior.natural_params(obs), self.deterministic)
        else:
            dist = self.prior(obs)
            z = dist.mode if self.deterministic else dist.sample()
        return self.vae.decode(z.to(obs.dtype), self.vae.encode_obs(obs)).clamp(-1.0, 1.0)


class DiffusionChunkPolicy(_ChunkPolicy):
    """The reverse DDPM chain of :class:`~mepoly_il.diffusion_policy.DiffusionPolicy`."""

    def __init__(self, model, normalization: Normalization):
        super().__init__()
        self.model, self.normalization = model, normalization
        self.config = model.config

    def _chunk(self, obs: Tensor) -> Tensor:
        return self.model.sample(obs)


class RecedingHorizonController:
    """Executes the first ``act_horizon`` actions of each predicted chunk, then replans."""

    def __init__(self, policy: _ChunkPolicy, act_horizon: int):
        if not 1 <= act_horizon <= policy.action_horizon:
            raise ValueError(f"act_horizon must lie in 1..{policy.action_horizon} (the chunk length), got {act_horizon}")
        self.policy, self.act_horizon = policy, act_horizon
        self.chunk_seconds: list[float] = []
        self.reset()

    def reset(self):
        self._history: deque = deque(maxlen=self.policy.obs_horizon)
        self._queue: deque = deque()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The next action for the current raw observation (obs_dim,)."""
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        if not self._history:
            self._history.extend([obs] * self.policy.obs_horizon)
        else:
            self._history.append(obs)
        if not self._queue:
            start = time.perf_counter()
            chunk = self.policy.predict_chunk(np.stack(self._history))
            self.chunk_seconds.append(time.perf_counter() - start)
            self._queue.extend(chunk[: self.act_horizon])
        return self._queue.popleft()


def measure_latency(policy: _ChunkPolicy, obs_history: np.ndarray, repeats: int = 20, warmup: int = 3) -> dict:
    """Seconds per action chunk for one history (batch 1, this process's threads): median, mean, min."""
    for _ in range(warmup):
        policy.predict_chunk(obs_history)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        policy.predict_chunk(obs_history)
        seconds.append(time.perf_counter() - start)
    seconds = np.asarray(seconds)
    return {"median_s": float(np.median(seconds)), "mean_s": float(seconds.mean()), "min_s": float(seconds.min()), "repeats": repeats}
