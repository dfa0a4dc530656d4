r"""FPO: flow policy optimization (McAllister et al., 2025) on Stable-Baselines3's PPO.

The paper's generative baseline (section 5, "Baselines"): ``FPO("MlpPolicy", env).learn(steps)``.

**Policy.**  A velocity field :math:`v_\theta(s, x_t, t)`, an MLP on the concatenation
``[features(s), x_t, t]``, transports noise :math:`x_0 = \epsilon \sim \mathcal{N}(0, I)` to an
action :math:`x_1` by Euler integration of :math:`\dot x_t = v_\theta(s, x_t, t)` in
``flow_steps`` (default 10) steps :math:`x_{t + h} = x_t + h\, v_\theta(s, x_t, t)`,
:math:`h = 1/\text{flow_steps}`.  The action :math:`x_1 \in \mathbb{R}^D` is unbounded: as for
SB3's Gaussian policy (``squash_output = False``) the rollout buffer keeps :math:`x_1` and SB3
clips it to the ``Box`` before ``env.step`` and in ``predict``.  ``predict(deterministic=True)``
integrates from :math:`x_0 = 0`.  The critic is SB3's (``mlp_extractor`` value branch + ``value_net``).

**Objective.**  FPO has no tractable likelihood; it replaces PPO's ratio by one built from the
conditional flow-matching (CFM) loss of the linear (rectified-flow) path
:math:`x_\tau = (1 - \tau)\epsilon + \tau x_1`, whose target velocity is :math:`x_1 - \epsilon`:

.. math::

    \ell_\theta(s, a; \epsilon, \tau) = \frac{1}{D}\big\lVert v_\theta(s, x_\tau, \tau) - (a - \epsilon)\big\rVert^2 .

For every stored transition :math:`(s, a)` FPO draws N pairs :math:`(\epsilon_i, \tau_i)`,
:math:`\epsilon_i \sim \mathcal{N}(0, I)`, :math:`\tau_i \sim U(0, 1)`, keeps the old losses
:math:`\ell_{\theta_{old}}` and uses

.. math::

    \hat r_\theta(s, a) = \exp\Big(\operatorname{clamp}\Big(\frac{1}{N}\sum_{i=1}^{N}
    \operatorname{clamp}(\ell_{\theta_{old}}(s, a; \epsilon_i, \tau_i) - \ell_\theta(s, a; \epsilon_i, \tau_i), -c, c), -c, c\Big)\Big)

(``ratio_log_clip = c``, default 3, the reference implementation's value) in PPO's clipped
surrogate :math:`-\min(\hat r A, \operatorname{clip}(\hat r, 1 \pm \epsilon_{clip}) A)`.  The
difference of CFM losses is an ELBO-difference estimate of :math:`\log \pi_\theta(a|s) -
\log \pi_{\theta_{old}}(a|s)`; :math:`\hat r = 1` exactly before the first update.

**Where it sits in SB3.**  :class:`FPO` subclasses :class:`~stable_baselines3.PPO`: rollouts,
GAE, the value loss, learning-rate/clip schedules, logging, ``save``/``load`` are PPO's.  The
(ε, τ) pairs are drawn and the old CFM losses computed at the start of :meth:`FPO.train`, before
the first gradient step, when the parameters are still exactly those that collected the rollout
(identical to drawing them at collection time, and it leaves SB3's ``collect_rollouts``
untouched); :class:`FPORolloutBuffer` stores them next to the transitions and hands them out in
the minibatches.  There is no entropy bonus (``ent_coef`` must be 0: FPO has no entropy) and no
``log_prob``: rollouts record 0 and ``policy.evaluate_actions`` raises.

Reference: D. McAllister, S. Ge, B. Yi, C. M. Kim, E. Weber, H. Choi, H. Feng, A. Kanazawa,
"Flow Matching Policy Gradients", 2025 (arXiv:2507.21053).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import explained_variance
from torch import Tensor, nn

from ...sb3.policies import GAUSSIAN_OPTIONS, apply_orthogonal_init, pop_gaussian_options

__all__ = ["FPO", "FPOPolicy", "FPORolloutBuffer", "FPORolloutBufferSamples", "cfm_loss"]


def cfm_loss(velocity: Tensor, actions: Tensor, eps: Tensor) -> Tensor:
    r"""Per-pair CFM loss :math:`\frac1D \lVert v - (a - \epsilon)\rVert^2` (mean over the last axis)."""
    return (velocity - (actions - eps)).pow(2).mean(-1)


class FPORolloutBufferSamples(NamedTuple):
    observations: Tensor
    actions: Tensor
    old_values: Tensor
    old_log_prob: Tensor
    advantages: Tensor
    returns: Tensor
    cfm_eps: Tensor  # (batch, N, D)
    cfm_t: Tensor  # (batch, N)
    old_cfm_loss: Tensor  # (batch, N)


class FPORolloutBuffer(RolloutBuffer):
    """SB3's ``RolloutBuffer`` plus, per transition, N noise draws ``cfm_eps`` ``(N, D)``, N flow
    times ``cfm_t`` ``(N,)`` and the old policy's CFM losses ``old_cfm_loss`` ``(N,)``
    (filled by :meth:`FPO.train` before its first update)."""

    _FPO_FIELDS = ("cfm_eps", "cfm_t", "old_cfm_loss")

    def __init__(self, *args, num_fpo_samples: int = 50, **kwargs):
        if int(num_fpo_samples) < 1:
            raise ValueError(f"num_fpo_samples must be a positive integer, got {num_fpo_samples!r}")
        self.num_fpo_samples = int(num_fpo_samples)
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        n = self.num_fpo_samples
        self.cfm_eps = np.zeros((self.buffer_size, self.n_envs, n, self.action_dim), dtype=np.float32)
        self.cfm_t = np.zeros((self.buffer_size, self.n_envs, n), dtype=np.float32)
        self.old_cfm_loss = np.zeros((self.buffer_size, self.n_envs, n), dtype=np.float32)
        super().reset()

    def get(self, batch_size: int | None = None):
        if not self.generator_ready:
            for name in self._FPO_FIELDS:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
        yield from super().get(batch_size)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> FPORolloutBufferSamples:
        base = super()._get_samples(batch_inds, env)
        extra = (self.cfm_eps[batch_inds], self.cfm_t[batch_inds], self.old_cfm_loss[batch_inds])
        return FPORolloutBufferSamples(*base, *map(self.to_torch, extra))


class FPOPolicy(ActorCriticPolicy):
    r"""Flow-matching actor (velocity MLP on ``[features(s), x_t, t]``) with SB3's critic.

    ``net_arch`` is SB3's: its ``pi`` layers are the hidden layers of the velocity MLP, its
    ``vf`` layers the critic's (a plain list is used for both).  ``flow_steps`` (default 10)
    Euler steps sample an action.  Output layer of the velocity field: orthogonal init with gain
    0.01 (SB3's action-net gain), so the initial policy is close to :math:`\mathcal{N}(0, I)`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, *args,
                 flow_steps: int = 10, **kwargs):
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"FPO needs a flat (1-D) Box action space, got {action_space}")
        if int(flow_steps) < 1:
            raise ValueError(f"flow_steps must be a positive integer, got {flow_steps!r}")
        pop_gaussian_options(kwargs, "FPO")
        if args:
            raise TypeError("FPOPolicy takes its options as keyword arguments (policy_kwargs)")
        self.flow_steps = int(flow_steps)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _arch(self) -> tuple[list[int], list[int]]:
        arch = self.net_arch
        if isinstance(arch, dict):
            return list(arch.get("pi", [])), list(arch.get("vf", []))
        return list(arch or []), list(arch or [])

    def _build_mlp_extractor(self) -> None:
        # the actor's hidden layers live in the velocity MLP; its branch of the extractor is the identity
        _, vf = self._arch()
        self.mlp_extractor = MlpExtractor(self.features_dim, net_arch=dict(pi=[], vf=vf), activation_fn=self.activation_fn, device=self.device)

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        pi, _ = self._arch()
        action_dim = int(self.action_space.shape[0])
        layers, width = [], self.mlp_extractor.latent_dim_pi + action_dim + 1
        for size in pi:
            layers += [nn.Linear(width, size), self.activation_fn()]
            width = size
        self.velocity_net = nn.Sequential(*layers)
        self.action_net = nn.Linear(width, action_dim)  # the velocity's output layer (SB3's name, SB3's gain)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        apply_orthogonal_init(self, {self.velocity_net: np.sqrt(2)})
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    # -- the flow -------------------------------------------------------------------------------
    def actor_features(self, obs) -> Tensor:
        """The actor's observation features (SB3's preprocessing and features extractor)."""
        return BasePolicy.extract_features(self, obs, self.pi_features_extractor)

    def velocity(self, features: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        r""":math:`v_\theta(s, x_t, t)` for ``features`` ``(..., F)``, ``x_t`` ``(..., D)``, ``t`` ``(..., 1)``."""
        return self.action_net(self.velocity_net(torch.cat([features, x_t, t], dim=-1)))

    def sample_actions(self, features: Tensor, deterministic: bool = False) -> Tensor:
        """Euler integration of the flow from :math:`x_0 \\sim \\mathcal{N}(0, I)` (0 if ``deterministic``) to :math:`x_1`."""
        shape = (features.shape[0], int(self.action_space.shape[0]))
        x = features.new_zeros(shape) if deterministic else torch.randn(shape, dtype=features.dtype, device=features.device)
        h = 1.0 / self.flow_steps
        for step in range(self.flow_steps):
            x = x + h * self.velocity(features, x, features.new_full((shape[0], 1), step * h))
        return x

    def cfm_loss(self, obs, actions: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        r"""CFM losses :math:`\ell_\theta(s, a; \epsilon_i, \tau_i)`: ``actions`` ``(B, D)``,
        ``eps`` ``(B, N, D)``, ``t`` ``(B, N)`` -> ``(B, N)``."""
        features = self.actor_features(obs)
        n = eps.shape[1]
        tau = t.unsqueeze(-1)
        x_t = (1 - tau) * eps + tau * actions.unsqueeze(1)
        velocity = self.velocity(features.unsqueeze(1).expand(-1, n, -1), x_t, tau)
        return cfm_loss(velocity, actions.unsqueeze(1), eps)

    # -- SB3's policy interface -----------------------------------------------------------------
    def forward(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Actions, values and a zero placeholder for the log-probability (FPO has none)."""
        actions = self.sample_actions(self.actor_features(obs), deterministic)
        values = self.predict_values(obs)
        return actions.reshape((-1, *self.action_space.shape)), values, actions.new_zeros(actions.shape[0])

    def _predict(self, observation, deterministic: bool = False) -> Tensor:
        return self.sample_actions(self.actor_features(observation), deterministic)

    def get_distribution(self, obs):
        raise NotImplementedError("FPO's flow policy has no tractable action distribution; use predict() or sample_actions()")

    def evaluate_actions(self, obs, actions):
        raise NotImplementedError("FPO's flow policy has no log-likelihood; FPO.train uses cfm_loss() instead")

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in GAUSSIAN_OPTIONS:
            data.pop(key, None)
        data.update(flow_steps=self.flow_steps)
        return data


class FPO(PPO):
    r"""Flow policy optimization: PPO whose likelihood ratio is :math:`\hat r_\theta` (module docstring).

    Args:
        policy: ``"MlpPolicy"`` (:class:`FPOPolicy`) or an :class:`FPOPolicy` subclass.
        env: the environment (a ``Box`` action space).
        num_fpo_samples: N, the (ε, τ) pairs per transition (default 50, the FPO paper's grid world).
        ratio_log_clip: c, the clamp of the CFM-loss differences and of their mean (default 3).
        **kwargs: :class:`~stable_baselines3.PPO`'s arguments (``learning_rate``, ``n_steps``,
            ``batch_size``, ``n_epochs``, ``clip_range``, ``normalize_advantage``, ...).
            ``ent_coef`` must be 0 and ``use_sde`` False; ``rollout_buffer_class`` is
            :class:`FPORolloutBuffer`.

    Example::

        >>> model = FPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, num_fpo_samples=8)
        >>> model.policy.flow_steps
        10
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": FPOPolicy}
    rollout_buffer: FPORolloutBuffer
    policy: FPOPolicy

    def __init__(self, policy: str | type[FPOPolicy] = "MlpPolicy", env=None, num_fpo_samples: int = 50, ratio_log_clip: float = 3.0,
                 **kwargs):
        if env is None and kwargs.get("_init_setup_model", True):  # ``load`` passes env=None without setup
            raise ValueError("FPO needs an environment (env=...)")
        if float(kwargs.get("ent_coef", 0.0)) != 0.0:
            raise ValueError(f"ent_coef={kwargs['ent_coef']!r}: FPO has no tractable entropy, so no entropy bonus (use 0)")
        if kwargs.get("use_sde", False):
            raise ValueError("use_sde is a Gaussian-policy option; FPO does not support it")
        if kwargs.get("rollout_buffer_class") not in (None, FPORolloutBuffer):
            raise ValueError("FPO needs its own FPORolloutBuffer (rollout_buffer_class)")
        if isinstance(policy, type) and not issubclass(policy, FPOPolicy):
            raise ValueError(f"FPO needs an FPOPolicy (or 'MlpPolicy'), got {policy.__name__}")
        if int(num_fpo_samples) < 1:
            raise ValueError(f"num_fpo_samples must be a positive integer, got {num_fpo_samples!r}")
        if not float(ratio_log_clip) > 0:
            raise ValueError(f"ratio_log_clip must be positive, got {ratio_log_clip!r}")
        self.num_fpo_samples, self.ratio_log_clip = int(num_fpo_samples), float(ratio_log_clip)
        kwargs["rollout_buffer_class"] = FPORolloutBuffer
        kwargs["rollout_buffer_kwargs"] = {**(kwargs.get("rollout_buffer_kwargs") or {}), "num_fpo_samples": self.num_fpo_samples}
        super().__init__(policy, env, **kwargs)

    @torch.no_grad()
    def store_cfm_pairs(self, chunk: int = 4096) -> None:
        """Draw N (ε, τ) pairs for every transition of the rollout buffer and store the current
        (= old) policy's CFM losses on them.  Called by :meth:`train` before any update."""
        buffer = self.rollout_buffer
        n, d = self.num_fpo_samples, buffer.action_dim
        total = buffer.buffer_size * buffer.n_envs
        obs = buffer.observations.reshape(total, *buffer.obs_shape)
        actions = buffer.actions.reshape(total, d)
        eps = torch.randn((total, n, d), device=self.device)
        t = torch.rand((total, n), device=self.device)
        losses = torch.cat([
            self.policy.cfm_loss(buffer.to_torch(obs[i : i + chunk]), buffer.to_torch(actions[i : i + chunk]).float(), eps[i : i + chunk],
                                 t[i : i + chunk])
            for i in range(0, total, chunk)
        ])
        shape = (buffer.buffer_size, buffer.n_envs)
        buffer.cfm_eps[...] = eps.cpu().numpy().reshape(*shape, n, d)
        buffer.cfm_t[...] = t.cpu().numpy().reshape(*shape, n)
        buffer.old_cfm_loss[...] = losses.cpu().numpy().reshape(*shape, n)

    def log_ratio(self, data: FPORolloutBufferSamples) -> tuple[Tensor, Tensor]:
        r"""``(log r_hat, new CFM losses)`` for a minibatch: the clamped mean of clamped loss differences."""
        new = self.policy.cfm_loss(data.observations, data.actions, data.cfm_eps, data.cfm_t)
        c = self.ratio_log_clip
        return (data.old_cfm_loss - new).clamp(-c, c).mean(-1).clamp(-c, c), new

    def train(self) -> None:
        """PPO's update (SB3's ``PPO.train``) with the FPO ratio and no entropy term."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = self.clip_range_vf(self._current_progress_remaining) if self.clip_range_vf is not None else None
        self.store_cfm_pairs()
        pg_losses, value_losses, clip_fractions, cfm_losses, ratios = [], [], [], [], []
        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for data in self.rollout_buffer.get(self.batch_size):
                values = self.policy.predict_values(data.observations).flatten()
                advantages = data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                log_ratio, new_cfm = self.log_ratio(data)
                ratio = torch.exp(log_ratio)
                policy_loss = -torch.min(advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
                if clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = data.old_values + torch.clamp(values - data.old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(data.returns, values_pred)
                loss = policy_loss + self.vf_coef * value_loss

                pg_losses.append(policy_loss.item())
                value_losses.append(value_loss.item())
                clip_fractions.append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())
                cfm_losses.append(new_cfm.mean().item())
                ratios.append(ratio.mean().item())
                with torch.no_grad():
                    approx_kl_div = torch.mean((ratio - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        self.logger.record("fpo/cfm_loss", np.mean(cfm_losses))
        self.logger.record("fpo/ratio_mean", np.mean(ratios))
