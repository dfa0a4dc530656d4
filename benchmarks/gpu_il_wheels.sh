#!/usr/bin/env bash
# Prepare the imitation-learning GPU check (benchmarks/gpu_il_cost.sh) in .gpu-il/ (git-ignored, carried to
# the machine, about 50 MB with PushT's 500 demonstrations):
#   .gpu-il/wheels/  the wheels mepoly_il trains with that the GPU image lacks (diffusers, h5py, tensorboard
#                    and their dependencies, at the versions the ManiSkill venv resolves), less numpy, pillow,
#                    pyyaml and setuptools, which the image has (it has torch, numpy, scipy, matplotlib, pyyaml);
#   .gpu-il/demos/   the trajectory files given, as TASK.h5.
#
#   bash benchmarks/gpu_il_wheels.sh PushT-v1=/path/to/trajectory.state.pd_ee_delta_pos.physx_cpu.h5
#
# PYVER picks the wheels' Python (default 3.12, the GPU image's).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 TASK=TRAJECTORY_H5 ..." >&2; exit 2; }
rm -rf .gpu-il && mkdir -p .gpu-il/wheels .gpu-il/demos
for item in "$@"; do
    task=${item%%=*} path=${item#*=}
    [ "$task" != "$item" ] && [ -f "$path" ] || { echo "$0: expected TASK=PATH of a trajectory file, got '$item'" >&2; exit 2; }
    cp "$path" ".gpu-il/demos/$task.h5"
done
python3 -m pip download -q --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu-il/wheels diffusers==0.31.0 h5py==3.16.0 tensorboard==2.21.0
rm -f .gpu-il/wheels/{numpy,pillow,pyyaml,PyYAML,setuptools}-*.whl
du -sh .gpu-il/wheels .gpu-il/demos
