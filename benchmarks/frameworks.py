#!/usr/bin/env python
"""Benchmark: PPO-MePoly on the paper's bandit in SB3, TorchRL and the single-file CleanRL-style PPO.

The command-line front end of :mod:`mepoly_dist.zoo.benchmark.frameworks` (``python benchmarks/frameworks.py --help``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, set before numpy and torch load

from mepoly_dist.zoo.benchmark.frameworks import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
