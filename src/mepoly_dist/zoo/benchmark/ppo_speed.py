#!/usr/bin/env python
r"""Wall-clock of SB3 PPO with a MePoly head against SB3 PPO-Gaussian, side by side.

Usage (from the repository root)::

    python benchmarks/ppo_speed.py [--iterations 10] [--seed 0] [--device cpu] [--quick] [--out benchmarks/results/ppo_speed]
                                   [--policies mepoly mepoly-gl64 gaussian gmm nsf] [--name ppo_speed_baselines]

Workloads (same environment, steps, batch and epochs for every policy):

* ``bandit``: the paper's bandit configuration, one PPO iteration = 1024 one-step episodes
  (the batched ``mepoly/Bandit-v0`` VecEnv with 1024 envs), 10 epochs x 6 minibatches
  (batch 171), order 14;
* ``smooth_world``: ``mepoly/SmoothWorld-v0`` four_walls, 64 envs x 32 steps = 2048 steps per
  iteration, 10 epochs of batch 256, order 14.

Policies: MePoly with the default rule of D = 2 (48 x 48 Gauss-Legendre screening, then 80 x 80), MePoly with
``gauss_legendre:64`` (4096 nodes, the smallest Gauss-Legendre rule whose worst log-partition
error on the paper's targets, 1.4e-5, is below the paper's 256 x 256 trapezoid grid's 1.7e-5;
see ``benchmarks/results/normalizer/normalizer.md``), and SB3's Gaussian ``MlpPolicy`` by default; ``--policies`` adds the baselines with a density of
their own (:mod:`mepoly_dist.zoo.baselines`: ``gmm``, the K = 4 Gaussian mixture, and ``nsf``, the
neural spline flow, each with its Monte-Carlo entropy of 16 draws).  The models are built once and then
``learn`` one iteration at a time, interleaved (A, B, C, A, B, C, ...), so machine noise hits all
policies alike; the table gives the median seconds per iteration, split into rollout collection
and training (SB3's ``time/`` clocks are not fine enough, so the script times ``collect_rollouts``
and ``train`` directly), and the ratio to the Gaussian policy.  The paper implementation's
~54 s per bandit iteration on one core of this machine (measured by the project with the
paper's code and settings: order 14, 256 x 256 trapezoid grid, 1024 samples, 10 epochs) is the
reference of the last column.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from .results import markdown_table, results_header, write_report

__all__ = ["WORKLOADS", "POLICIES", "DEFAULT_POLICIES", "build", "measure", "main"]

PAPER_BANDIT_SECONDS = 54.0

WORKLOADS = {
    "bandit": dict(env_id="mepoly/Bandit-v0", env_kwargs={"target": "lemniscate"}, n_envs=1024,
                   hyperparams=dict(n_steps=1, batch_size=171, n_epochs=10, gamma=1.0, gae_lambda=1.0, ent_coef=0.2,
                                    normalize_advantage=False, learning_rate=1e-3)),
    "smooth_world": dict(env_id="mepoly/SmoothWorld-v0", env_kwargs={"layout": "four_walls"}, n_envs=64,
                         hyperparams=dict(n_steps=32, batch_size=256, n_epochs=10, gamma=0.99, ent_coef=0.05, learning_rate=3e-4)),
}
#: ``--policies`` key -> (the report's label, the policy name of :mod:`mepoly_dist.zoo.config`, policy_kwargs)
POLICIES = {
    "mepoly": ("MePoly (default rule: 48^2 screening, then 80^2)", "mepoly", dict(order=14)),
    "mepoly-gl64": ("MePoly (gauss_legendre:64)", "mepoly", dict(order=14, quadrature="gauss_legendre:64")),
    "gaussian": ("Gaussian (SB3 MlpPolicy)", "gaussian", {}),
    "gmm": ("GMM (K = 4, 16 entropy draws per component)", "gmm", dict(n_components=4, entropy_samples=16)),
    "nsf": ("NSF (3 spline transforms, [64, 64], 16 entropy draws)", "nsf",
            dict(transforms=3, hidden_features=(64, 64), entropy_samples=16)),
}
DEFAULT_POLICIES = ("mepoly", "mepoly-gl64", "gaussian")


class _Timed:
    """Wraps a model's ``collect_rollouts`` and ``train`` to record their durations."""

    def __init__(self, model):
        self.collect, self.train = [], []
        collect, train = model.collect_rollouts, model.train

        def timed_collect(*args, **kwargs):
            start = time.perf_counter()
            out = collect(*args, **kwargs)
            self.collect.append(time.perf_counter() - start)
            return out

        def timed_train(*args, **kwargs):
            start = time.perf_counter()
            out = train(*args, **kwargs)
            self.train.append(time.perf_counter() - start)
            return out

        model.collect_rollouts, model.train = timed_collect, timed_train


def build(workload: dict, policy: str, policy_kwargs: dict, seed: int, device: str = "cpu"):
    """A PPO model of ``policy`` (a :mod:`mepoly_dist.zoo.config` policy name) on the workload."""
    from stable_baselines3 import PPO

    from mepoly_dist.zoo.config import policy_class
    from mepoly_dist.zoo.envs import make_vec_env

    env = make_vec_env(workload["env_id"], n_envs=workload["n_envs"], seed=seed, **workload["env_kwargs"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*mini-batch size.*")
        return PPO(policy_class(policy), env, seed=seed, device=device, policy_kwargs=dict(policy_kwargs),
                   **workload["hyperparams"])


def measure(workload_name: str, iterations: int, seed: int, device: str = "cpu", policies=DEFAULT_POLICIES) -> list[list]:
    workload = WORKLOADS[workload_name]
    steps = workload["n_envs"] * workload["hyperparams"]["n_steps"]
    policies = list(dict.fromkeys(["gaussian", *policies]))  # the ratios' reference is always measured
    models = {POLICIES[key][0]: build(workload, *POLICIES[key][1:], seed, device) for key in policies}
    timers = {name: _Timed(model) for name, model in models.items()}
    for model in models.values():  # warm-up iteration (first-call allocations, sampler caches)
        model.learn(steps, reset_num_timesteps=False)
    for timer in timers.values():
        timer.collect.clear()
        timer.train.clear()
    for _ in range(iterations):
        for model in models.values():
            model.learn(steps, reset_num_timesteps=False)
    gaussian = "Gaussian (SB3 MlpPolicy)"
    total = {name: np.median(np.add(t.collect, t.train)) for name, t in timers.items()}
    rows = []
    for name, timer in timers.items():
        row = [workload_name, name, steps, f"{np.median(timer.collect):.3f}", f"{np.median(timer.train):.3f}",
               f"{total[name]:.3f}", f"{total[name] / total[gaussian]:.2f}x"]
        row.append(f"1/{PAPER_BANDIT_SECONDS / total[name]:.0f}" if workload_name == "bandit" else "")
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=10, help="timed PPO iterations per policy and workload")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of every policy (the environments step on the CPU)")
    parser.add_argument("--quick", action="store_true", help="2 iterations (smoke run)")
    parser.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES), choices=list(POLICIES),
                        help="policies side by side (the Gaussian, the ratios' reference, is always measured)")
    parser.add_argument("--out", default="benchmarks/results/ppo_speed")
    parser.add_argument("--name", default=None, help="report name (default: ppo_speed[_DEVICE][_quick])")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    iterations = 2 if args.quick else args.iterations
    header = results_header("PPO wall-clock: MePoly vs Gaussian" + (" and the baselines" if {"gmm", "nsf"} & set(args.policies) else "")
                            + " (SB3, side by side)", args.seed)
    rows = []
    for name in args.workloads:
        rows += measure(name, iterations, args.seed, args.device, args.policies)
    table = markdown_table(["workload", "policy", "steps / iteration", "rollout s", "train s", "s / iteration (median)",
                            "vs Gaussian", "vs paper code (54 s)"], rows)
    text = header + f"\n{iterations} timed iterations per policy (interleaved), after one warm-up iteration; device {args.device}.\n\n" + table
    name = args.name or "ppo_speed" + ("" if args.device == "cpu" else f"_{args.device}") + ("_quick" if args.quick else "")
    write_report(args.out, f"{name}.md", text)


if __name__ == "__main__":
    main()
