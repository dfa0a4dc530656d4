#!/usr/bin/env python
"""Benchmark: ManiSkill PPO and evaluation cost, MePoly against the Gaussian (ManiSkill venv).

The command-line front end of :mod:`mepoly_maniskill.benchmark.speed` (``python benchmarks/maniskill_speed.py --help``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, set before numpy and torch load

from mepoly_maniskill.benchmark.speed import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
