#!/usr/bin/env bash
# The imitation-learning GPU check, in one call of under 5 minutes on one GPU: what a training run at the
# reference preset (ManiSkill's Diffusion Policy schedule, integrations/il/mepoly_il/presets/reference.yml)
# costs on CUDA, and beside it on the same machine's CPU: seconds per iteration of both methods, hours per
# run and latency per action chunk (benchmarks/il_cost.py, mepoly_il.cost).
#
# Prepare here:    bash benchmarks/gpu_il_wheels.sh PushT-v1=<trajectory.state.pd_ee_delta_pos.physx_cpu.h5>
# Run there:       bash benchmarks/gpu_il_cost.sh "$OUT"      (the device tool, carrying .gpu-il)
# Reports (il_cost_reference_cuda.md / _cpu.md and their .json) go to the folder given,
# default benchmarks/results/il_cost. DEVICE=cpu runs the CUDA part on the CPU (a dry run of this script).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/il_cost}
device=${DEVICE:-cuda}
mkdir -p "$out"
[ -d .gpu-il/wheels ] && [ -n "$(ls .gpu-il/demos/*.h5 2>/dev/null)" ] || { echo "no .gpu-il/: run benchmarks/gpu_il_wheels.sh first" >&2; exit 2; }
site=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .gpu-il/wheels/*.whl
export PYTHONPATH=$PWD/src:$PWD/integrations/maniskill:$PWD/integrations/il:$site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
demos=()
for path in .gpu-il/demos/*.h5; do demos+=(--demos "$(basename "$path" .h5)=$path"); done
if [ "$device" = cuda ]; then
    python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    steps=(20 220)
else
    steps=(2 4)
fi
echo "== reference preset on $device"
python3 benchmarks/il_cost.py "${demos[@]}" --preset reference --device "$device" --steps "${steps[@]}" --out "$out" --name "il_cost_reference_$device"
if [ "$device" = cuda ]; then
    echo "== reference preset on the CPU, one thread, the same machine"
    python3 benchmarks/il_cost.py "${demos[@]}" --preset reference --device cpu --steps 2 4 --out "$out" --name il_cost_reference_cpu
fi
