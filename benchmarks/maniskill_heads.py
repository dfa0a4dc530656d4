#!/usr/bin/env python
"""Benchmark: MePoly heads for ManiSkill's action dimensions (core only).

The command-line front end of :mod:`mepoly_dist.zoo.benchmark.maniskill_heads` (``python benchmarks/maniskill_heads.py --help``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, set before numpy and torch load

from mepoly_dist.zoo.benchmark.maniskill_heads import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
