#!/usr/bin/env python
r"""Benchmark of the environments: env steps/s of the batched numpy VecEnv against SB3's DummyVecEnv.

Usage (from the repository root)::

    python benchmarks/envs.py [--quick] [--seed 0] [--out benchmarks/results/envs]

Prints a Markdown table and writes it to ``OUT/envs.md``.

For Smooth World (``four_walls``, the default layout) and the bandit (lemniscate) it steps,
with uniformly random actions in the action box (drawn before the clock starts, from
``--seed``):

* the batched VecEnv (``mepoly_dist.zoo.envs.make_vec_env(..., vectorized=True)``, wrapped in
  SB3's ``VecMonitor``) with 64 and 256 environments;
* the same with 256 environments without ``VecMonitor`` (the VecEnv alone);
* SB3's ``DummyVecEnv`` of 64 single gymnasium environments
  (``make_vec_env(..., vectorized=False)``, i.e. SB3's ``make_vec_env``: ``gym.make`` + ``Monitor``).

Each configuration runs a fixed number of VecEnv steps (auto-resets included: every bandit
step ends an episode); configurations are repeated round-robin in one process (so that load
from other processes hits them alike) and the best and median repeats are reported, with the
ratio batched/DummyVecEnv at the same number of environments.  One process, one thread
(torch and BLAS).

``--quick`` shrinks the step counts for a smoke run (seconds); its numbers are not the
reported ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import torch

from mepoly_dist.zoo.envs import BANDIT_ID, SMOOTH_WORLD_ID, make_vec_env

from .results import markdown_table, results_header, write_report

__all__ = ["ENVS", "CONFIGS", "measure", "table_lines", "main"]

ENVS = [(SMOOTH_WORLD_ID, {"layout": "four_walls"}), (BANDIT_ID, {"target": "lemniscate"})]
#: (label, vectorized, n_envs, monitor); the DummyVecEnv row is the reference of the ratio
CONFIGS = [
    ("batched VecEnv", True, 64, True),
    ("batched VecEnv", True, 256, True),
    ("batched VecEnv without VecMonitor", True, 256, False),
    ("SB3 DummyVecEnv", False, 64, True),
]
REFERENCE = ("SB3 DummyVecEnv", False, 64, True)


def fmt_rate(steps_per_s):
    return f"{steps_per_s / 1e6:.2f} M" if steps_per_s >= 1e6 else f"{steps_per_s / 1e3:.0f} k"


def run_steps(venv, actions):
    """Step ``venv`` through the pre-drawn ``actions`` (``(steps, n_envs, 2)``); return the seconds taken."""
    t = time.perf_counter()
    for step_actions in actions:
        venv.step(step_actions)
    return time.perf_counter() - t


def measure(args, log):
    steps = {True: args.steps_batched, False: args.steps_dummy}
    results = {}
    for env_id, env_kwargs in ENVS:
        rng = np.random.default_rng(args.seed)
        runs = {}
        for label, vectorized, n_envs, monitor in CONFIGS:
            venv = make_vec_env(env_id, n_envs=n_envs, seed=args.seed, vectorized=vectorized, monitor=monitor, **env_kwargs)
            venv.reset()
            low, high = venv.action_space.low, venv.action_space.high
            actions = rng.uniform(low, high, size=(steps[vectorized], n_envs, 2)).astype(np.float32)
            run_steps(venv, actions[: max(len(actions) // 10, 1)])  # warm-up
            runs[(label, vectorized, n_envs, monitor)] = (venv, actions)
        times = {key: [] for key in runs}
        for _ in range(args.repeats):
            for key, (venv, actions) in runs.items():
                times[key].append(run_steps(venv, actions))
        for key, (venv, actions) in runs.items():
            env_steps = actions.shape[0] * actions.shape[1]
            best, median = min(times[key]), float(np.median(times[key]))
            results[(env_id, *key)] = dict(env_steps=env_steps, vec_steps=actions.shape[0], best=env_steps / best, median=env_steps / median)
            log(f"  {env_id} {key}: {results[(env_id, *key)]}")
            venv.close()
    return results


def table_lines(results, args):
    header = ["environment", "VecEnv", "n_envs", "VecEnv steps", "env steps/s (best)", "env steps/s (median)", "us per env step (best)", "batched / DummyVecEnv 64 (best; median)"]
    rows = []
    for env_id, env_kwargs in ENVS:
        reference = results[(env_id, *REFERENCE)]
        for label, vectorized, n_envs, monitor in CONFIGS:
            r = results[(env_id, label, vectorized, n_envs, monitor)]
            ratio = "1 (reference)" if (label, vectorized, n_envs, monitor) == REFERENCE else f"{r['best'] / reference['best']:.1f}x; {r['median'] / reference['median']:.1f}x"
            name = f"`{env_id}` ({', '.join(f'{k}={v}' for k, v in env_kwargs.items())})"
            rows.append([name, label, n_envs, f"{r['vec_steps']:,}", fmt_rate(r["best"]), fmt_rate(r["median"]), f"{1e6 / r['best']:.2f}", ratio])
    lines = ["## Env steps per second (random actions, auto-resets included)", ""]
    lines.append(
        f"Each configuration ran {args.steps_batched:,} (batched) or {args.steps_dummy:,} (DummyVecEnv) VecEnv steps per repeat, "
        f"{args.repeats} repeats interleaved round-robin in this process; actions drawn uniformly from the action box before timing "
        f"(seed {args.seed}). 'env steps' = VecEnv steps x n_envs. The ratio compares each batched row with the DummyVecEnv row of the "
        "same environment, measured side by side in this run. The batched rows include SB3's `VecMonitor` (as in training) except "
        "the one marked 'without'; the DummyVecEnv row is SB3's `make_vec_env`: `gym.make` (with gymnasium's `PassiveEnvChecker` and "
        "`OrderEnforcing` wrappers) + `Monitor` per environment."
    )
    lines.append("")
    lines.append(markdown_table(header, rows))
    lines.append("")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps, for a smoke run (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/envs"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.steps_batched, args.steps_dummy, args.repeats = (100, 20, 2) if args.quick else (4000, 500, 7)

    def log(text):
        print(text, flush=True)

    t_start = time.perf_counter()
    title = "Environment benchmark: batched numpy VecEnv vs SB3 DummyVecEnv" + (" (--quick smoke run: not the reported numbers)" if args.quick else "")
    extra = (
        f"* also: gymnasium {gymnasium.__version__}; OMP/OpenBLAS/MKL threads: {os.environ.get('OMP_NUM_THREADS')}; "
        "one process (the machine may be shared with other jobs: compare numbers within one run)"
    )
    head = [results_header(title, args.seed, extra)]
    log(head[0])
    results = measure(args, log)
    body = table_lines(results, args)
    tail = [f"Run time: {time.perf_counter() - t_start:.0f} s.", ""]
    path = write_report(args.out, "envs.md", "\n".join(head + body + tail), echo=False)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
