#!/usr/bin/env bash
# Prepare the GPU check (benchmarks/gpu_check.sh): the pure-Python wheels of the RL extra that the
# GPU machine's image lacks, into .whl/ (git-ignored; carried to the machine, under 2 MB).
# That image has torch, numpy, scipy, matplotlib, pytest, hypothesis, pyyaml, pandas and
# cloudpickle; it cannot reach a package index.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 -d .whl \
    gymnasium==1.4.0 farama-notifications==0.0.6 stable-baselines3==2.9.2 sb3-contrib==2.9.2
ls -l .whl
