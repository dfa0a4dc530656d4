"""Rollouts of SB3 policies (MePoly, GMM, FPO, Gaussian) on the paper's environments, turned into
the metrics of :mod:`mepoly_dist.zoo.metrics`: bandit action samples at the constant observation,
Smooth World episodes from a layout's fixed starts, and the drift field of a Smooth World policy.

Every function forks torch's RNG, so that a seeded evaluation never resets a training run's
random stream.
"""

from __future__ import annotations

import numpy as np

from .metrics import bandit_metrics, goal_entropy

__all__ = ['policy_action_samples', 'evaluate_bandit_policy', 'rollout_from_start', 'evaluate_smooth_world_policy', 'smooth_world_drift']


def policy_action_samples(policy, observation: np.ndarray, num_samples: int, deterministic: bool = False, chunk: int = 1 << 15) -> np.ndarray:
    """``num_samples`` environment-space actions of an SB3 policy (or model) at one observation.

    Uses ``predict``, so the actions are exactly what the environment would receive
    (unscaled for MePoly, clipped for SB3's Gaussian).
    """
    observation = np.asarray(observation, dtype=np.float32)
    out = []
    for start in range(0, num_samples, chunk):
        n = min(chunk, num_samples - start)
        actions, _ = policy.predict(np.repeat(observation[None], n, axis=0), deterministic=deterministic)
        out.append(np.asarray(actions, dtype=np.float64).reshape(n, -1))
    return np.concatenate(out)


def evaluate_bandit_policy(policy, points: np.ndarray, alpha: float, num_samples: int = 100_000, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Bandit metrics of a policy at the bandit's constant observation; returns ``(metrics, samples)``."""
    import torch

    observation = np.zeros(policy.observation_space.shape, dtype=np.float32)
    with torch.random.fork_rng():  # a seeded evaluation must not reset a training run's RNG
        torch.manual_seed(seed)
        samples = policy_action_samples(policy, observation, num_samples)
    return bandit_metrics(samples, points, alpha), samples


def rollout_from_start(policy, layout: str, start, episodes: int = 100, seed: int = 0, deterministic: bool = False, max_steps: int = 256):
    """Run ``episodes`` Smooth World episodes in parallel from ``start`` (world units).

    Returns ``(trajectories, goals)``: a list of ``(T_i + 1, 2)`` position arrays and an int
    array with the goal region each episode ended in (-1: none, i.e. death or time-out).
    """
    import torch

    from .envs import make_vec_env

    env = make_vec_env("mepoly/SmoothWorld-v0", n_envs=episodes, seed=seed, monitor=False, layout=layout, max_steps=max_steps)
    env.set_options({"position": [float(start[0]), float(start[1])]})
    trajectories = [[np.asarray(start, dtype=np.float64)] for _ in range(episodes)]
    goals = np.full(episodes, -1, dtype=np.int64)
    active = np.ones(episodes, dtype=bool)
    with torch.random.fork_rng():  # a seeded evaluation must not reset a training run's RNG
        torch.manual_seed(seed)
        obs = env.reset()
        while active.any():
            actions, _ = policy.predict(obs, deterministic=deterministic)
            obs, _, dones, infos = env.step(actions)
            for i in np.flatnonzero(active):
                trajectories[i].append(np.asarray(infos[i]["position"], dtype=np.float64))
                if dones[i]:
                    active[i] = False
                    goals[i] = int(infos[i].get("goal", -1))
    env.close()
    return [np.stack(t) for t in trajectories], goals


def evaluate_smooth_world_policy(policy, layout: str, episodes: int = 100, seed: int = 0, deterministic: bool = False) -> tuple[dict, dict]:
    """Success rate, goal counts and normalized goal entropy from each of the layout's fixed starts.

    On layouts with routes (:attr:`Layout.routes`: the single-goal layouts, whose goal entropy is
    always 0) each start also gets the route counts of its successful episodes and their
    normalized entropy ``route_entropy`` (:func:`goal_entropy` of the counts), averaged over the
    starts like the goal entropy.

    Returns ``(metrics, trajectories)`` with ``trajectories[start_index]`` the list of paths.
    """
    from .envs.layouts import LAYOUTS

    spec = LAYOUTS[layout]
    metrics, paths = {"layout": layout, "episodes_per_start": episodes, "starts": []}, {}
    for index, start in enumerate(spec.eval_starts):
        trajectories, goals = rollout_from_start(policy, layout, start, episodes, seed + index, deterministic)
        counts = np.bincount(goals[goals >= 0], minlength=spec.num_goals)
        metrics["starts"].append(
            {
                "start": [float(v) for v in start],
                "success_rate": float(np.mean(goals >= 0)),
                "goal_counts": counts.tolist(),
                "goal_entropy": goal_entropy(counts),
                "mean_length": float(np.mean([len(t) - 1 for t in trajectories])),
            }
        )
        if spec.routes:
            routes = np.array([spec.route_of(path) for path, goal in zip(trajectories, goals) if goal >= 0], dtype=np.int64)
            route_counts = np.bincount(routes[routes >= 0], minlength=len(spec.routes))
            metrics["starts"][-1].update(route_counts=route_counts.tolist(), route_entropy=goal_entropy(route_counts))
        paths[index] = trajectories
    for key in ("success_rate", "goal_entropy") + (("route_entropy",) if spec.routes else ()):
        metrics[key] = float(np.mean([s[key] for s in metrics["starts"]]))
    return metrics, paths


def smooth_world_drift(policy, layout: str, samples: int = 64, seed: int = 0) -> dict:
    r"""The drift field of a Smooth World policy: at the centre :math:`s` of every free cell, the
    mean velocity :math:`\mathbb{E}_{a \sim \pi(\cdot|s)}[\operatorname{clip}(a, -1, 1)]`
    (in units of the maximum speed), estimated from ``samples`` stochastic actions per cell.

    The kinematics :math:`p' = p + \operatorname{clip}(a, -1, 1)\, v_{\max} \Delta t` move an agent
    by this drift plus zero-mean noise, so the field shows where the policy sends agents and
    how decisively: the clip acts per axis, so a nearly deterministic action has length 1 along an
    axis and up to :math:`\sqrt 2` on a diagonal; a length near 0 is a diffuse density or modes that
    cancel.  Works with any SB3-like ``policy.predict`` (MePoly, GMM, FPO, Gaussian).
    The observations come from the environment itself (:class:`SmoothWorldCore` started at the
    cell centres), and torch's RNG is forked as in :func:`rollout_from_start`.

    Returns a dict with ``positions`` (``(m, 2)`` cell centres, world units, in
    :attr:`Layout.start_cells` order), ``drift`` (``(m, 2)``), ``speed`` (``(m,)``, its length) and
    ``samples``.
    """
    import torch

    from .envs.layouts import get_layout
    from .envs.smooth_world import SmoothWorldCore

    if int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    samples = int(samples)
    positions = get_layout(layout).start_cells + 0.5
    core = SmoothWorldCore(len(positions), layout)
    core.reset(np.arange(len(positions)), [np.random.default_rng(seed)] * len(positions), [{"position": p} for p in positions])
    obs = np.repeat(core.observations(), samples, axis=0)
    with torch.random.fork_rng():  # a seeded evaluation must not reset a training run's RNG
        torch.manual_seed(seed)
        actions, _ = policy.predict(obs, deterministic=False)
    velocity = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0).reshape(len(positions), samples, 2)
    drift = velocity.mean(axis=1)
    return {"positions": positions, "drift": drift, "speed": np.linalg.norm(drift, axis=1), "samples": samples}
