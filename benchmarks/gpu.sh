#!/usr/bin/env bash
# The GPU checks of one device lease, in one call (README "GPU"): throughput (train and synthesis
# images/s, AMP on, batch sizes 64 to 4,096, every shape and preset) then MNIST CAS
# time-to-quality, classic vs dcgan at the presets' CUDA defaults, one seed. Each part has its
# own time limit so a slow one cannot eat the other; results land in $OUT (default
# benchmarks/results). Not timed as one script: its parts ran in two calls of 204 s and
# 326 s on an H100. On a CUDA machine:
#   MNIST_ROOT=dir/holding/MNIST/raw bash benchmarks/gpu.sh [CAS seconds per preset, default 100]
set -u
out=${OUT:-benchmarks/results}
budget=${1:-100}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu_smi.txt"
timeout 240 python3 benchmarks/throughput.py --batches 64 256 1024 4096 \
    --name throughput_gpu --out "$out" 2>&1 | tee "$out/throughput_gpu.log"
timeout $((budget * 2 + 120)) python3 benchmarks/cas.py --data mnist --root "${MNIST_ROOT:-../shared/data}" \
    --device cuda --seeds 0 --presets classic dcgan --budget "$budget" --fractions 0.2 0.5 1 \
    --clf-epochs 8 --name cas_mnist_gpu 2>&1 | tee "$out/cas_mnist_gpu.log"
[ "$out" = benchmarks/results ] || cp benchmarks/results/cas_mnist_gpu.json "$out/" 2>/dev/null
