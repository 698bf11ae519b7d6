#!/usr/bin/env bash
# Issue 42's GPU checks, one script for one device lease (estimated ~7 min on an H100, not yet
# run there; a failed part can be rerun alone within the lease: name the parts, e.g.
# `bash benchmarks/gpu.sh quality`):
#   tests    tests/test_cuda.py: the bf16 probe on real hardware, a checkpoint trained on the
#            GPU used on the CPU, resuming a GPU run
#   speed    training images/s of `dcgan` (AMP on) at batch 64 / 1,024 / 4,096 at 28×28×1,
#            32×32×3 and 64×64×3, synthesis images/s; then the batch-64 28×28 step under
#            torch.compile reduce-overhead (CUDA graphs): is the small-batch step host-bound?
#   quality  time to CAS/TRTR 0.99 on the MNIST subset (6,000 train) and to 0.95 on CIFAR-10
#            (2,000 per class): params.yaml's train section on CUDA with train.minutes = the
#            budget (what users run), one seed, snapshots at quarters of the budget; the two
#            runs side by side on the card (a batch-64 step leaves it mostly idle)
# Prepare here (needs ../shared/data and the package index), once:
#   bash benchmarks/gpu.sh pack    # .gpu/data.tar.gz (MNIST raw + CIFAR-10 JPEGs, ~10 MB) and
#                                  # .gpu/wheels (albumentations + its needs, for Python 3.12)
# There (the device tool, carry [".gpu"]):  bash benchmarks/gpu.sh
# Results: $RESULTS (default benchmarks/results/gpu); where $OUT is set, also packed into
# $OUT/gpu_results.tgz after every part, so a run cut off keeps the parts it finished.
# Knobs (tests/test_benchmarks.py runs every part on the CPU with tiny ones): DEVICE (cuda),
# DATA (a root holding MNIST/raw and cifar10/), MNIST_S / CIFAR_S (GAN seconds, 90 / 120),
# CIFAR_PER_CLASS (2000), BATCHES ("64 1024 4096"), SHAPES, STEPS (20), SYNTH (images per
# timed synthesis), CLF_EPOCHS (MNIST 15 / CIFAR 20), COMPILE (reduce-overhead; none: skip).
set -u
cd "$(dirname "$0")/.." || exit 1

if [ "${1:-}" = pack ]; then  # here: the data and wheels the lent machine lacks
    set -e
    mkdir -p .gpu/wheels
    tar -czf .gpu/data.tar.gz -C ../shared/data MNIST/raw cifar10
    py=python3 && [ -x .venv/bin/python ] && py=.venv/bin/python  # the project's environment
    pins=$($py -c "import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in
        ('albumentations', 'albucore', 'pydantic', 'pydantic-core', 'annotated-types',
         'typing-inspection', 'typing-extensions', 'stringzilla', 'simsimd')))")
    # shellcheck disable=SC2086  # pins is a list
    $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .gpu/wheels $pins
    du -sh .gpu
    exit 0
fi

parts=${*:-tests speed quality}
for part in $parts; do
    case $part in tests|speed|quality) ;;
    *) echo "gpu.sh: no part '$part' (tests, speed, quality; or pack, here)"; exit 2 ;; esac
done
device=${DEVICE:-cuda}
res=${RESULTS:-benchmarks/results/gpu}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$res"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ! python3 -W ignore -c "import albumentations" 2>/dev/null && [ -d .gpu/wheels ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$work/site" .gpu/wheels/*.whl && export PYTHONPATH=$work/site:$PYTHONPATH
fi
python3 -W ignore -c "import albumentations, sklearn, pandas, yaml, pytest, torchvision" || {
    echo "gpu.sh: a package above is missing: run 'bash benchmarks/gpu.sh pack' here and carry .gpu"
    exit 1; }
if [ -z "${DATA:-}" ] && [ -f .gpu/data.tar.gz ]; then
    DATA=$work/data && mkdir -p "$DATA" && tar -xzf .gpu/data.tar.gz -C "$DATA"
fi
data=${DATA:-../shared/data}

bundle() {  # what the device tool brings back: one file, refreshed after every part
    [ -n "${OUT:-}" ] && tar -czf "$OUT/.gpu_results.tgz" -C "$res" . \
        && mv "$OUT/.gpu_results.tgz" "$OUT/gpu_results.tgz"
    return 0
}

status=0
for part in $parts; do
    echo "== $part"
    case $part in
    tests)
        command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm \
            --format=csv | tee "$res/gpu_smi.txt"
        timeout 150 python3 -m pytest -q -rA -p no:cacheprovider tests/test_cuda.py \
            > "$res/test_cuda.log" 2>&1 || status=1
        tail -n 12 "$res/test_cuda.log" ;;
    speed)
        # shellcheck disable=SC2086  # BATCHES, SHAPES, SYNTH: lists / optional flags
        timeout 180 python3 benchmarks/throughput.py --presets dcgan --batches ${BATCHES:-64 1024 4096} \
            --shapes ${SHAPES:-mnist28 rgb32 rgb64} --steps "${STEPS:-20}" --stage-epochs 0 \
            ${SYNTH:+--synth-images $SYNTH} --name throughput_gpu --out "$res" || status=1
        if [ "${COMPILE:-reduce-overhead}" != none ]; then
            timeout 150 python3 benchmarks/throughput.py --presets dcgan --batches 64 --shapes mnist28 \
                --steps "${STEPS:-20}" --stage-epochs 0 --compile "${COMPILE:-reduce-overhead}" \
                ${SYNTH:+--synth-images $SYNTH} --name throughput_gpu_compiled --out "$res" || status=1
        fi ;;
    quality)
        cas="python3 benchmarks/cas.py --device $device --params params.yaml --minutes --presets dcgan
             --seeds 0 --fractions 0.25 0.5 0.75 1 --root $data --out $res --cache $work/cache
             --samples $res/samples"
        # shellcheck disable=SC2086  # cas is a command line
        timeout $((${MNIST_S:-90} + 300)) $cas --data mnist --budget "${MNIST_S:-90}" --target 0.99 \
            --clf-epochs "${CLF_EPOCHS:-15}" --name cas_mnist_gpu > "$res/cas_mnist_gpu.log" 2>&1 &
        mnist=$!
        # shellcheck disable=SC2086
        timeout $((${CIFAR_S:-120} + 360)) $cas --data cifar10 --budget "${CIFAR_S:-120}" --target 0.95 \
            --max-per-class "${CIFAR_PER_CLASS:-2000}" --clf-epochs "${CLF_EPOCHS:-20}" \
            --name cas_cifar_gpu > "$res/cas_cifar_gpu.log" 2>&1 &
        cifar=$!
        wait $mnist || status=1
        wait $cifar || status=1
        tail -n 24 "$res/cas_mnist_gpu.log" "$res/cas_cifar_gpu.log" ;;
    esac
    bundle
done
exit $status
