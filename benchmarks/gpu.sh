#!/usr/bin/env bash
# The GPU checks of one device lease, in one call (benchmarks/RESULTS.md, "GPU"):
#   0. the CUDA-only tests (tests/test_cuda.py: bf16 probe, GPU checkpoint on the CPU, resume);
#   1. throughput: train and synthesis images/s, AMP on, batch sizes 64 to 4,096
#      (THROUGHPUT_ARGS picks shapes / presets; default every shape and preset);
#   1b. data-parallel training images/s, 1 rank and (more than one GPU) one rank per GPU
#      (benchmarks/ranks.py), and the evaluate grid's fits/hour with 1 and 4 concurrent fits on
#      the card (benchmarks/grid.py, threads runner);
#   2. MNIST CAS time-to-quality, 3 seeds: classic and dcgan at the presets' CUDA defaults
#      (batch 64), and dcgan at batch 256 (`dcgan@256`). The seeds run as three processes side
#      by side on the one GPU (a batch-64 step leaves it mostly idle), so every run shares it
#      the same way: compare the presets within this table, not with a GPU of one's own.
# Each part has its own time limit so a slow one cannot eat the other; results land in $OUT
# (default benchmarks/results). On a CUDA machine:
#   MNIST_ROOT=dir/holding/MNIST/raw bash benchmarks/gpu.sh [CAS seconds per run, default 75]
# The python3 there needs torch, torchvision, scikit-learn, pandas, PyYAML, pytest and
# albumentations (cas.py scores with the evaluate stage's code, which imports it); a machine
# without the last can take wheels (albumentations, albucore, pydantic, pydantic-core,
# annotated-types, typing-inspection, stringzilla, simsimd) on PYTHONPATH.
set -u
out=${OUT:-benchmarks/results}
budget=${1:-75}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -W ignore -c "import albumentations, sklearn, pandas, yaml, pytest, torchvision" || {
    echo "gpu.sh: a package above is missing from this python3: install it or put wheels on" \
         "PYTHONPATH (header of this script)"; exit 1; }
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu_smi.txt"
timeout 120 python3 -m pytest -q -rA -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
# shellcheck disable=SC2086  # THROUGHPUT_ARGS is a list of options
timeout 240 python3 benchmarks/throughput.py --batches 64 256 1024 4096 ${THROUGHPUT_ARGS:-} \
    --name throughput_gpu --out "$out" 2>&1 | tee "$out/throughput_gpu.log"
# 1a. SyntheticDataset from a checkpoint on the GPU (workers 0) against the PNG folder
timeout 120 python3 benchmarks/loader.py --device cuda --workers 0 --name loader_gpu \
    --out "$out" 2>&1 | tee "$out/loader_gpu.log"
gpus=$(nvidia-smi -L | wc -l)
timeout 180 python3 benchmarks/ranks.py --ranks 1 $([ "$gpus" -gt 1 ] && echo "$gpus") --batch 256 \
    --device cuda --root "${MNIST_ROOT:-../shared/data}" --name ranks_gpu --out "$out" 2>&1 | tee "$out/ranks_gpu.log"
timeout 300 python3 benchmarks/grid.py --data mnist --root "${MNIST_ROOT:-../shared/data}" \
    --set evaluate.device=cuda --workers 4 --runners threads-1 threads-N --name grid_gpu \
    --out "$out" 2>&1 | tail -12 | tee "$out/grid_gpu.log"
cas="env OMP_NUM_THREADS=${CAS_THREADS:-4} python3 benchmarks/cas.py --data mnist --device cuda \
     --root ${MNIST_ROOT:-../shared/data} --budget $budget --fractions 0.1 0.2 0.5 1 --clf-epochs 8"
for seed in 0 1 2; do
    timeout $((budget * 3 + 240)) $cas --seeds $seed --presets classic dcgan dcgan@256 \
        --name cas_mnist_gpu_s$seed > "$out/cas_mnist_gpu_s$seed.log" 2>&1 &
done
wait
python3 benchmarks/cas.py --combine cas_mnist_gpu_s0 cas_mnist_gpu_s1 cas_mnist_gpu_s2 \
    --name cas_mnist_gpu 2>&1 | tee "$out/cas_mnist_gpu.log"
[ "$out" = benchmarks/results ] || cp benchmarks/results/cas_mnist_gpu*.json "$out/" 2>/dev/null
