#!/usr/bin/env python
"""Benchmark: imitation learning on ManiSkill, the paper's Table 1 (ManiSkill venv, [il] extra).

The command-line front end of :mod:`mepoly_il.benchmark` (``python benchmarks/maniskill_il.py --help``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, set before numpy and torch load

from mepoly_il.benchmark import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
