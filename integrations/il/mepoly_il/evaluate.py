r"""ManiSkill rollouts of a chunk policy: success_once and success_at_end over N episodes.

Environments are ManiSkill 3's own (``gym.make(env_id, obs_mode="state",
control_mode="pd_ee_delta_pos", sim_backend="physx_cpu")``) with the baseline's episode limits
(:data:`MAX_EPISODE_STEPS`).  Every episode runs to its step limit (a success does not end it),
so that

* ``success_once``: the task's ``info["success"]`` was true at some step;
* ``success_at_end``: it is true at the last step

(ManiSkill's baseline metrics of the same names).  Episodes use the seeds ``seed_offset + i``,
disjoint from the demonstrations' seeds, for the environment's reset and for the policy's sampling
(torch's CPU generator is seeded per episode inside ``torch.random.fork_rng``, so an evaluation gives
the same numbers whatever ran before it in the process, and leaves the caller's RNG state as it
was).  For the first ``strip_episodes`` episodes a few frames are rendered into an image strip
(``strip.png``) where a render device works (lavapipe here); a failing renderer is reported, not
fatal.
"""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import torch

from .policy import RecedingHorizonController

__all__ = ["MAX_EPISODE_STEPS", "EVAL_SEED_OFFSET", "evaluate_policy"]

#: ManiSkill's Diffusion Policy baseline settings (examples/baselines/diffusion_policy)
MAX_EPISODE_STEPS = {"PushCube-v1": 100, "PickCube-v1": 100, "StackCube-v1": 200, "PushT-v1": 150}
#: evaluation seeds start here; the demonstrations use seeds below 10,000
EVAL_SEED_OFFSET = 100_000


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def evaluate_policy(policy, env_id: str, episodes: int, act_horizon: int, max_episode_steps: int | None = None,
                    seed_offset: int = EVAL_SEED_OFFSET, strip_episodes: int = 2, strip_frames: int = 5,
                    out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Rolls out ``policy`` (a :class:`~mepoly_il.policy._ChunkPolicy`) for ``episodes`` episodes.

    Returns a dict with ``success_once``, ``success_at_end`` (fractions), per-episode lists,
    ``chunk_latency_s`` (median seconds per predicted chunk during the rollouts), wall time and,
    when ``out_dir`` is given, writes ``eval.json`` and ``strip.png`` there.
    """
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401  (registers the tasks)
    from tqdm.auto import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if max_episode_steps is None:
        if env_id not in MAX_EPISODE_STEPS:
            raise ValueError(f"no default step limit for {env_id!r}; pass max_episode_steps (known: {sorted(MAX_EPISODE_STEPS)})")
        max_episode_steps = MAX_EPISODE_STEPS[env_id]
    render = strip_episodes > 0 and out_dir is not None
    env = gym.make(env_id, obs_mode="state", control_mode="pd_ee_delta_pos", sim_backend="physx_cpu",
                   max_episode_steps=max_episode_steps, render_mode="rgb_array" if render else None)
    obs_dim = env.observation_space.shape[-1]
    if obs_dim != policy.normalization.obs_dim:
        raise ValueError(f"{env_id} has {obs_dim}-d state observations, but the policy was trained on {policy.normalization.obs_dim}-d ones")
    controller = RecedingHorizonController(policy, act_horizon)
    success_once, success_at_end, strips, render_error = [], [], [], None
    frame_steps = set(np.linspace(0, max_episode_steps - 1, strip_frames).astype(int).tolist())
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), closing(env):
        for episode in tqdm(range(episodes), desc=f"eval {env_id}", disable=not progress):
            obs, _ = env.reset(seed=seed_offset + episode)
            torch.manual_seed(seed_offset + episode)
            controller.reset()
            ever, frames = False, []
            for step in range(max_episode_steps):
                if render and episode < strip_episodes and step in frame_steps and render_error is None:
                    try:
                        frames.append(_to_numpy(env.render())[0])
                    except Exception as error:  # noqa: BLE001 - any renderer failure only disables the strip
                        render_error = f"{type(error).__name__}: {error}"
                action = controller.act(_to_numpy(obs)[0])
                obs, _, _, truncated, info = env.step(action[None])
                success = bool(_to_numpy(info["success"]).reshape(-1)[0])
                ever |= success
                if bool(_to_numpy(truncated).reshape(-1)[0]):
                    break
            success_once.append(ever)
            success_at_end.append(success)
            if frames:
                strips.append(np.concatenate(frames, axis=1))
    result = {
        "env_id": env_id, "episodes": episodes, "max_episode_steps": max_episode_steps, "act_horizon": act_horizon,
        "seeds": [seed_offset, seed_offset + episodes - 1],
        "success_once": float(np.mean(success_once)), "success_at_end": float(np.mean(success_at_end)),
        "chunk_latency_s": float(np.median(controller.chunk_seconds)), "chunks": len(controller.chunk_seconds),
        "wall_s": time.perf_counter() - start,
        "per_episode": {"success_once": success_once, "success_at_end": success_at_end},
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if strips:
            import matplotlib.pyplot as plt

            plt.imsave(out_dir / "strip.png", np.concatenate(strips, axis=0))
            result["strip"] = str(out_dir / "strip.png")
        result["render_error"] = render_error
        (out_dir / "eval.json").write_text(json.dumps(result, indent=1))
    return result
