r"""Success rates of an SB3 policy on a ManiSkill task, ManiSkill's way.

ManiSkill reports two per-episode metrics: ``success_once`` (the task's success predicate held at
some step) and ``success_at_end`` (it holds at the last step).  :func:`evaluate_success` runs
``episodes`` episodes through SB3's own :func:`~stable_baselines3.common.evaluation.evaluate_policy`
(which balances episodes across parallel environments) on the environments of
:func:`mepoly_maniskill.make_vec_env` and reads both metrics from the ``info`` of each episode's
last step (:class:`mepoly_maniskill.vec_env.EpisodeSuccess`).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["evaluate_success"]


def evaluate_success(model, env_id: str, episodes: int = 100, *, seed: int = 10_000, n_envs: int = 4, deterministic: bool = True,
                     env=None, **env_kwargs) -> dict:
    """Evaluate ``model`` (anything with SB3's ``predict``) on ``episodes`` episodes of ``env_id``.

    Args:
        model: an SB3 algorithm or policy.
        env_id: the ManiSkill task.
        episodes: number of episodes (SB3 spreads them evenly over the ``n_envs`` environments).
        seed: seed of the evaluation environments (different from training seeds by default).
        deterministic: ``True`` uses the policy's mode (the Gaussian's mean, MePoly's highest-density
            action), ``False`` samples actions as in training.
        env: an existing VecEnv to use instead of making one (it is not closed).
        **env_kwargs: options of :func:`mepoly_maniskill.make_vec_env`.  Evaluation episodes always
            run to the time limit (``ignore_terminations=True``, as ManiSkill's own evaluations do),
            so ``success_at_end`` is the task's state at the time limit whatever the training setting.

    Returns:
        ``success_once``, ``success_at_end``, ``mean_return``, ``mean_length``, ``episodes``, ``seconds``.
    """
    from stable_baselines3.common.evaluation import evaluate_policy

    from .vec_env import make_vec_env

    if episodes < 1:
        raise ValueError(f"episodes must be positive, got {episodes}")
    own = env is None
    env_kwargs = {**env_kwargs, "ignore_terminations": True, "bootstrap_terminations": False}
    if own:
        env = make_vec_env(env_id, n_envs=min(n_envs, episodes), seed=seed, **env_kwargs)
    success_once, success_at_end = [], []

    def record(locals_, _globals):
        if locals_["done"]:
            info = locals_["info"]
            success_once.append(bool(info.get("success_once", info.get("is_success", False))))
            success_at_end.append(bool(info.get("success_at_end", False)))

    start = time.perf_counter()
    try:
        returns, lengths = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True,
                                           callback=record, warn=False)
    finally:
        if own:
            env.close()
    seconds = time.perf_counter() - start
    n = len(returns)  # evaluate_policy calls back only for the episodes it counts: one record per return
    return {
        "success_once": float(np.mean(success_once[:n])) if success_once else float("nan"),
        "success_at_end": float(np.mean(success_at_end[:n])) if success_at_end else float("nan"),
        "mean_return": float(np.mean(returns)),
        "mean_length": float(np.mean(lengths)),
        "episodes": n,
        "deterministic": bool(deterministic),
        "seconds": seconds,
    }
