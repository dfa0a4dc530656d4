r"""SB3 ``VecEnv``\ s over ManiSkill 3 tasks: one call, CPU processes or one GPU-parallel simulation.

:func:`make_vec_env` turns a ManiSkill task id into what Stable-Baselines3 trains on, with state
observations and ``pd_ee_delta_pos`` control by default (the action box is ManiSkill's normalized
``[-1, 1]^4``, exactly a MePoly head's support):

* **CPU** (``sim_backend="physx_cpu"``, the default without CUDA): ManiSkill's CPU simulator runs
  one scene per environment, so each environment is a ``gym.make(..., sim_backend="physx_cpu")``
  wrapped in ManiSkill's :class:`~mani_skill.utils.wrappers.gymnasium.CPUGymWrapper` (numpy,
  unbatched) and SB3's :class:`~stable_baselines3.common.vec_env.SubprocVecEnv` runs ``n_envs``
  of them in worker processes (:class:`~stable_baselines3.common.vec_env.DummyVecEnv` for one).
* **GPU** (``sim_backend="physx_cuda"``, the default where ``torch.cuda.is_available()``):
  ManiSkill simulates all ``n_envs`` scenes in one process; :class:`ManiSkillBatchedVecEnv`
  exposes ManiSkill's :class:`~mani_skill.vector.wrappers.gymnasium.ManiSkillVectorEnv`
  (auto-reset, per-episode ``success_once``) as one SB3 ``VecEnv``.  ManiSkill ships an SB3
  wrapper of its own (``mani_skill.vector.wrappers.sb3``, marked TODO upstream), but it puts the
  whole batch's running returns into every step's ``info["episode"]``, which SB3's episode
  statistics read as finished episodes; this adapter reports episodes only when they end.

Both paths report SB3's ``info["is_success"]`` (ManiSkill's ``success_once`` of the episode) and
``info["terminal_observation"]`` at the end of each episode, so ``rollout/success_rate`` appears
in SB3's logs and bootstrapping at time limits works.  Wrap the result in SB3's ``VecMonitor``
for episode returns.

Example::

    >>> from mepoly_maniskill import make_vec_env
    >>> venv = make_vec_env("PushCube-v1", n_envs=4, seed=0)   # 4 processes on a CPU machine
    >>> venv.observation_space.shape, venv.action_space.shape
    ((35,), (4,))
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

__all__ = ["make_vec_env", "make_env", "resolve_sim_backend", "check_env_id", "EpisodeSuccess", "ManiSkillBatchedVecEnv",
           "DEFAULT_OBS_MODE", "DEFAULT_CONTROL_MODE"]

DEFAULT_OBS_MODE = "state"
DEFAULT_CONTROL_MODE = "pd_ee_delta_pos"
_BACKEND_ALIASES = {"cpu": "physx_cpu", "gpu": "physx_cuda", "cuda": "physx_cuda"}


def resolve_sim_backend(sim_backend: str = "auto") -> str:
    """``"auto"`` -> ``"physx_cuda"`` where CUDA is available, else ``"physx_cpu"``; ``cpu``/``gpu`` aliases."""
    backend = _BACKEND_ALIASES.get(sim_backend, sim_backend)
    if backend == "auto":
        return "physx_cuda" if torch.cuda.is_available() else "physx_cpu"
    if backend not in ("physx_cpu", "physx_cuda"):
        raise ValueError(f"unknown sim_backend {sim_backend!r}; expected 'auto', 'physx_cpu' (cpu) or 'physx_cuda' (gpu)")
    if backend == "physx_cuda" and not torch.cuda.is_available():
        raise ValueError("sim_backend='physx_cuda' needs a CUDA device, and torch.cuda.is_available() is False here")
    return backend


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` naming close matches when ``env_id`` is not a registered ManiSkill task."""
    import difflib

    import mani_skill.envs  # noqa: F401  (registers the tasks)
    from mani_skill.utils.registration import REGISTERED_ENVS

    if env_id not in REGISTERED_ENVS:
        close = difflib.get_close_matches(env_id, list(REGISTERED_ENVS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"{env_id!r} is not a registered ManiSkill task{hint}")


class EpisodeSuccess(gym.Wrapper):
    """Adds SB3's ``info["is_success"]`` (ManiSkill's ``success_once``) and ``success_at_end`` to the
    last step of each episode of an unbatched (``CPUGymWrapper``) ManiSkill environment.

    With ``bootstrap_terminations`` an episode that the task terminates (success or failure) is
    reported as truncated instead, so SB3 bootstraps its value from the final observation (see
    :func:`make_vec_env`).  ``info["terminated"]`` holds the task's own flag either way."""

    def __init__(self, env: gym.Env, bootstrap_terminations: bool = False):
        super().__init__(env)
        self._success_once = False
        self.bootstrap_terminations = bool(bootstrap_terminations)

    def reset(self, **kwargs):
        self._success_once = False
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = bool(info.get("success", False))
        self._success_once = self._success_once or success
        if terminated or truncated:
            info["is_success"] = self._success_once
            info["success_once"] = self._success_once
            info["success_at_end"] = success
            info["terminated"] = bool(terminated)
            if self.bootstrap_terminations:
                terminated, truncated = False, True
        return obs, float(reward), bool(terminated), bool(truncated), info


def _env_kwargs(obs_mode: str, control_mode: str, reward_mode: str | None, max_episode_steps: int | None, env_kwargs: dict) -> dict:
    kwargs = dict(obs_mode=obs_mode, control_mode=control_mode, render_mode=env_kwargs.pop("render_mode", None), **env_kwargs)
    if reward_mode is not None:
        kwargs["reward_mode"] = reward_mode
    if max_episode_steps is not None:
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
        kwargs["max_episode_steps"] = int(max_episode_steps)
    return kwargs


def make_env(env_id: str, *, obs_mode: str = DEFAULT_OBS_MODE, control_mode: str = DEFAULT_CONTROL_MODE, reward_mode: str | None = None,
             max_episode_steps: int | None = None, ignore_terminations: bool = False, bootstrap_terminations: bool = False,
             **env_kwargs) -> gym.Env:
    """One standard (numpy, unbatched) gymnasium env of a ManiSkill task on the CPU simulator
    (``ignore_terminations``, ``bootstrap_terminations``: see :func:`make_vec_env`)."""
    import mani_skill.envs  # noqa: F401
    from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

    kwargs = _env_kwargs(obs_mode, control_mode, reward_mode, max_episode_steps, dict(env_kwargs))
    env = gym.make(env_id, num_envs=1, sim_backend="physx_cpu", **kwargs)
    return EpisodeSuccess(CPUGymWrapper(env, ignore_terminations=bool(ignore_terminations)), bootstrap_terminations=bootstrap_terminations)


class _EnvFactory:
    """A picklable ``env_fn`` for ``SubprocVecEnv`` (the workers build their own environment)."""

    def __init__(self, env_id: str, kwargs: dict):
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self) -> gym.Env:
        return make_env(self.env_id, **self.kwargs)


class ManiSkillBatchedVecEnv(VecEnv):
    r"""ManiSkill's batched simulation (all scenes in one process, usually ``physx_cuda``) as an SB3 ``VecEnv``.

    Actions arrive as a numpy array ``(n_envs, D)`` and go to the simulator's device in one
    tensor; observations, rewards and dones come back as numpy arrays.  Auto-reset is ManiSkill's
    (:class:`~mani_skill.vector.wrappers.gymnasium.ManiSkillVectorEnv`, same-step partial resets);
    at an episode's end ``info`` holds ``terminal_observation``, ``TimeLimit.truncated``,
    ``terminated`` (the task's flag), ``is_success`` (= ``success_once``) and ``success_at_end``.

    Works with any ``num_envs`` the backend allows: on ``physx_cpu`` that is 1, which is how it is
    tested on machines without a GPU.
    """

    def __init__(self, env_id: str, n_envs: int, *, sim_backend: str = "physx_cuda", obs_mode: str = DEFAULT_OBS_MODE,
                 control_mode: str = DEFAULT_CONTROL_MODE, reward_mode: str | None = None, max_episode_steps: int | None = None,
                 ignore_terminations: bool = False, bootstrap_terminations: bool = False, **env_kwargs):
        import mani_skill.envs  # noqa: F401
        from mani_skill.vector.wrappers.gymnasium import ManiSkillVectorEnv

        kwargs = _env_kwargs(obs_mode, control_mode, reward_mode, max_episode_steps, dict(env_kwargs))
        env = gym.make(env_id, num_envs=n_envs, sim_backend=sim_backend, **kwargs)
        self._venv = ManiSkillVectorEnv(env, auto_reset=True, ignore_terminations=bool(ignore_terminations), record_metrics=True)
        observation_space = self._venv.single_observation_space
        if isinstance(observation_space, gym.spaces.Box) and observation_space.dtype != np.float32:
            observation_space = gym.spaces.Box(observation_space.low, observation_space.high, observation_space.shape, np.float32)
        super().__init__(n_envs, observation_space, self._venv.single_action_space)
        self._seed: int | None = None
        self._actions: torch.Tensor | None = None
        self.bootstrap_terminations = bool(bootstrap_terminations)

    @property
    def device(self) -> torch.device:
        return self._venv.device

    @staticmethod
    def _numpy(x) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def reset(self):
        seed = None if self._seed is None else [self._seed + i for i in range(self.num_envs)]
        obs, _ = self._venv.reset(seed=seed)
        self._seed = None  # a seed applies to the next reset only, like SB3's own VecEnvs
        return self._numpy(obs).astype(np.float32, copy=False)

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, *self.action_space.shape):
            raise ValueError(f"expected actions of shape {(self.num_envs, *self.action_space.shape)}, got {actions.shape}")
        self._actions = torch.as_tensor(actions, device=self.device)

    def step_wait(self):
        obs, reward, terminated, truncated, infos = self._venv.step(self._actions)
        obs = self._numpy(obs).astype(np.float32, copy=False)
        terminated = self._numpy(terminated).reshape(self.num_envs).astype(bool)
        truncated = self._numpy(truncated).reshape(self.num_envs).astype(bool)
        dones = terminated | truncated
        out = [{} for _ in range(self.num_envs)]
        if dones.any():
            final_obs = self._numpy(infos["final_observation"]).astype(np.float32, copy=False)
            final_info = infos["final_info"]
            success_once = self._numpy(final_info["episode"]["success_once"]).reshape(-1) if "success_once" in final_info["episode"] else None
            success = self._numpy(final_info["success"]).reshape(-1) if "success" in final_info else None
            for i in np.flatnonzero(dones):
                info = out[i]
                info["terminal_observation"] = final_obs[i]
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i]) or self.bootstrap_terminations
                info["terminated"] = bool(terminated[i])
                if success_once is not None:
                    info["is_success"] = info["success_once"] = bool(success_once[i])
                if success is not None:
                    info["success_at_end"] = bool(success[i])
        return obs, self._numpy(reward).reshape(self.num_envs).astype(np.float32), dones, out

    def close(self) -> None:
        self._venv.close()

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self._venv.base_env, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self._venv.base_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self._venv.base_env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]


def make_vec_env(env_id: str, n_envs: int = 1, *, seed: int | None = None, sim_backend: str = "auto", obs_mode: str = DEFAULT_OBS_MODE,
                 control_mode: str = DEFAULT_CONTROL_MODE, reward_mode: str | None = None, max_episode_steps: int | None = None,
                 ignore_terminations: bool = False, bootstrap_terminations: bool = False, vec_env_cls: type[VecEnv] | None = None,
                 **env_kwargs) -> VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` copies of the ManiSkill task ``env_id``.

    Args:
        env_id: a ManiSkill task id (``PushCube-v1``, ``PickCube-v1``, ...).
        n_envs: parallel environments: worker processes on the CPU, scenes of one simulation on the GPU.
        seed: seeds the first reset (environment ``i`` gets ``seed + i``).
        sim_backend: ``"auto"`` (GPU where CUDA is available), ``"physx_cpu"``/``"cpu"`` or ``"physx_cuda"``/``"gpu"``.
        obs_mode, control_mode, reward_mode, max_episode_steps: ManiSkill's ``gym.make`` options
            (``reward_mode=None`` keeps the task's default, ``normalized_dense`` for the cube tasks).
        ignore_terminations: ``False`` ends an episode when the task succeeds (or fails);
            ``True`` runs every episode to its time limit, ManiSkill's ``ignore_terminations``.
            With a dense reward and early termination on success, a discounted agent can earn more
            by hovering near success than by succeeding (measured here on PushCube: success fell
            from 0.75 to 0.16 while the return kept rising) -- unless ``bootstrap_terminations``.
        bootstrap_terminations: with ``ignore_terminations=False``, an episode the task ends
            (success or failure) still resets at once, but is reported to SB3 as a time-limit
            truncation (``info["TimeLimit.truncated"]``), so PPO bootstraps ``gamma * V(s_end)``
            instead of a zero future: ManiSkill's own PPO baseline (``examples/baselines/ppo``,
            partial resets) treats every episode end this way.  Finishing is then worth as much as
            hovering, and early resets give more distinct start states per update.
            ``info["terminated"]`` keeps the task's flag.
        vec_env_cls: on the CPU, SB3's ``SubprocVecEnv`` (default for ``n_envs > 1``) or ``DummyVecEnv``.
        **env_kwargs: any other ``gym.make`` keyword of the task.
    """
    if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    check_env_id(env_id)
    backend = resolve_sim_backend(sim_backend)
    options = dict(obs_mode=obs_mode, control_mode=control_mode, reward_mode=reward_mode, max_episode_steps=max_episode_steps,
                   ignore_terminations=ignore_terminations, bootstrap_terminations=bootstrap_terminations, **env_kwargs)
    if backend == "physx_cuda":
        if vec_env_cls is not None:
            raise ValueError("vec_env_cls applies to the CPU simulator only; the GPU simulation is one batched VecEnv")
        venv: VecEnv = ManiSkillBatchedVecEnv(env_id, int(n_envs), sim_backend=backend, **options)
    else:
        vec_env_cls = vec_env_cls or (SubprocVecEnv if n_envs > 1 else DummyVecEnv)
        factories = [_EnvFactory(env_id, options) for _ in range(int(n_envs))]
        venv = vec_env_cls(factories, start_method="forkserver") if vec_env_cls is SubprocVecEnv else vec_env_cls(factories)
    if seed is not None:
        venv.seed(int(seed))
        venv.action_space.seed(int(seed))
    return venv
