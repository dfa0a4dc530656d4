#!/usr/bin/env python
"""Benchmark: what an imitation-learning training run costs at a preset, on the CPU or a GPU (ManiSkill venv, [il] extra).

The command-line front end of :mod:`mepoly_il.cost` (``python benchmarks/il_cost.py --help``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, set before numpy and torch load

from mepoly_il.cost import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
