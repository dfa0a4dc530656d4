#!/usr/bin/env python
r"""ManiSkill PushCube: PPO with the MePoly head against PPO-Gaussian, training steps/s and the time of
a deterministic evaluation, side by side in one process.

Usage (from the repository root, in the ManiSkill environment: ``integrations/maniskill/install.sh``)::

    python benchmarks/maniskill_speed.py [--task PushCube-v1] [--iterations 6] [--episodes 40] [--seed 0] [--out benchmarks/results/maniskill_speed]

Both policies use their ``mepoly train maniskill/<task>`` presets (``presets/ppo.yml``: 4 CPU
simulator processes, 100 steps per environment per iteration, 8 epochs of minibatch 100; MePoly's
head is two 2-D blocks of order 6).  After one warm-up iteration each, the policies learn
``--iterations`` PPO iterations interleaved (A, B, A, B, ...), so machine noise hits both alike;
steps/s is the median over iterations.  Then each is evaluated on ``--episodes`` episodes with
``deterministic=True`` (MePoly's mode, the Gaussian's mean; ManiSkill's evaluation convention, full
50-step episodes) on the same evaluation environments, and the table gives seconds per 100
episodes.  The policies are barely trained: this measures cost, not success.
Writes ``OUT/maniskill_speed.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mepoly_dist.zoo.benchmark.results import markdown_table, results_header, write_report

__all__ = ["METHODS", "main"]

METHODS = ("mepoly", "gaussian")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="PushCube-v1")
    parser.add_argument("--iterations", type=int, default=6, help="timed PPO iterations per policy")
    parser.add_argument("--episodes", type=int, default=40, help="deterministic evaluation episodes per policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/maniskill_speed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from ..evaluation import evaluate_success

    from mepoly_dist.zoo.config import resolve_config
    from mepoly_dist.zoo.train import build_model, make_env

    configs = {method: resolve_config(f"maniskill/{args.task}", method, seed=args.seed) for method in METHODS}
    envs = {method: make_env(config, args.seed) for method, config in configs.items()}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            models = {method: build_model(config, envs[method], Path(tmp) / method) for method, config in configs.items()}
            steps = {method: config.n_envs * config.hyperparams["n_steps"] for method, config in configs.items()}
            for method, model in models.items():  # warm-up: first-call allocations, sampler caches
                model.learn(steps[method], reset_num_timesteps=False)
            seconds = {method: [] for method in METHODS}
            for _ in range(args.iterations):
                for method, model in models.items():
                    start = time.perf_counter()
                    model.learn(steps[method], reset_num_timesteps=False)
                    seconds[method].append(time.perf_counter() - start)
            evaluation = {}
            for method, model in models.items():
                env_kwargs = {k: v for k, v in configs[method].env_kwargs.items() if k not in ("ignore_terminations", "bootstrap_terminations")}
                evaluation[method] = evaluate_success(model, args.task, episodes=args.episodes, deterministic=True, **env_kwargs)
    finally:
        for env in envs.values():
            env.close()

    sps = {method: steps[method] / float(np.median(seconds[method])) for method in METHODS}
    per_100 = {method: evaluation[method]["seconds"] * 100 / evaluation[method]["episodes"] for method in METHODS}
    rows = [
        [method, steps[method], f"{np.median(seconds[method]):.2f}", f"{sps[method]:.0f}", f"{sps[method] / sps['gaussian']:.2f}x",
         evaluation[method]["episodes"], f"{per_100[method]:.1f}", f"{per_100[method] / per_100['gaussian']:.2f}x"]
        for method in METHODS
    ]
    table = markdown_table(["policy", "steps / iteration", "s / iteration (median)", "training steps/s", "vs Gaussian",
                            "evaluation episodes", "deterministic evaluation, s per 100 episodes", "vs Gaussian"], rows)
    header = results_header(f"ManiSkill {args.task}: PPO-MePoly vs PPO-Gaussian cost (side by side)", args.seed)
    text = header + f"\n{args.iterations} timed PPO iterations per policy (interleaved) after one warm-up iteration; evaluation with the mode / mean.\n\n" + table
    write_report(args.out, "maniskill_speed.md", text)


if __name__ == "__main__":
    main()
