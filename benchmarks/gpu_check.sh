#!/usr/bin/env bash
# The GPU check of the distribution core, in one call of under 5 minutes on one GPU.
#
#   1. the device tests on CUDA: tests/core/test_devices.py (normalizer, KL, sampler chi-square, mode,
#      corners, one SB3 PPO iteration, each against CPU float64 references), the host-sync
#      counts and the CUDA case of tests/core/test_torch_corners.py;
#   2. the speed tables on CUDA and on the CPU, side by side on the same machine:
#      benchmarks/core_speed.py (normalizer, sample(), mode) and benchmarks/ppo_speed.py
#      (seconds per PPO iteration against SB3's Gaussian).
#
# Prepare here:    bash benchmarks/gpu_wheels.sh          (the RL extra's wheels into .whl/)
# Run there:       bash benchmarks/gpu_check.sh "$OUT"    (the device tool, carrying .whl)
# Results (tables and the test log) are written to the folder given, default benchmarks/results/gpu_check.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/gpu_check}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/mepoly-site .whl/*.whl
    export PYTHONPATH=/tmp/mepoly-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "== device tests"
python3 -m pytest -q -p no:cacheprovider -rs tests/core/test_devices.py tests/core/test_host_sync.py tests/core/test_torch_corners.py 2>&1 | tee "$out/gpu_tests.log"
python3 -m pytest -q -p no:cacheprovider -rs tests/rl/test_sb3.py -k on_the_device 2>&1 | tee -a "$out/gpu_tests.log"
echo "== core speed (cuda, then cpu)"
python3 benchmarks/core_speed.py --device cuda --repeats 3 --out "$out"
python3 benchmarks/core_speed.py --device cpu --repeats 1 --out "$out"
echo "== PPO iteration (cuda, then cpu)"
python3 benchmarks/ppo_speed.py --device cuda --iterations 3 --out "$out"
python3 benchmarks/ppo_speed.py --device cpu --iterations 3 --out "$out"
