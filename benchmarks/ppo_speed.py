#!/usr/bin/env python
"""Benchmark: SB3 PPO with MePoly against SB3's Gaussian, seconds per iteration.

The command-line front end of :mod:`mepoly_dist.zoo.benchmark.ppo_speed` (``python benchmarks/ppo_speed.py --help``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, set before numpy and torch load

from mepoly_dist.zoo.benchmark.ppo_speed import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
