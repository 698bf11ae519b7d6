#!/usr/bin/env bash
# Hyperparameter screen: many short CAS runs side by side (benchmarks/RESULTS.md, "Sample
# quality": the learning-rate and digits screens), one per line of JOBS: "<name> <cas.py options>", e.g.
#   m_lr2_s0 --data mnist --seeds 0 --presets dcgan:16@32 --epochs 17 --lr 0.002
# Names starting m_ score MNIST with the 8-epoch classifier, d_ score digits with 5 pairs
# and the digits settings of params.yaml. Every run trains for a fixed epoch count (the budget
# is unbounded), with AMP off, so a GPU run mimics the CPU defaults that the job names; the
# screen ranks candidates, the CPU runs of cas.py measure them. On a lent GPU:
#   P=16 MNIST_ROOT=dir/holding/MNIST bash benchmarks/screen.sh JOBS NAME
# (DEVICE=cpu runs on CPU; PYTHON picks the interpreter, default python3)
# Writes results/scr_<name>.json per run and $OUT/NAME.json (default benchmarks/results) with
# one row per run, and prints the mean CAS per variant (the name without its _sN suffix).
set -u
jobs=$1 name=$2 out=${OUT:-benchmarks/results}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
export SCREEN_DEVICE=${DEVICE:-cuda} SCREEN_ROOT=${MNIST_ROOT:-../shared/data} SCREEN_PYTHON=${PYTHON:-python3}
mkdir -p /tmp/screen_logs "$out"
run_one() {
    local job=$1; shift
    local extra="--clf-epochs 8"
    [[ $job == d_* ]] && extra="--repeats 5 --set cls_weight=0"
    # shellcheck disable=SC2086  # extra is a list of options
    timeout "${JOB_TIMEOUT:-420}" "$SCREEN_PYTHON" benchmarks/cas.py --device "$SCREEN_DEVICE" \
        --root "$SCREEN_ROOT" --budget 100000 --fractions 1 --set amp=false $extra "$@" \
        --name "scr_$job" > "/tmp/screen_logs/$job.log" 2>&1
    echo "$job rc=$?"
}
export -f run_one
xargs -P "${P:-16}" -L 1 bash -c 'run_one "$@"' _ < "$jobs"
"$SCREEN_PYTHON" - "$jobs" "$out/$name.json" <<'PY'
import collections, json, statistics, sys
from pathlib import Path

from augment.io import write_json
rows = []
for line in Path(sys.argv[1]).read_text().split("\n"):
    job = line.split(" ")[0]
    path = Path("benchmarks/results") / f"scr_{job}.json"
    if job and path.exists():
        run = json.loads(path.read_text())["runs"][-1]
        rows.append({"name": job, "variant": job.rsplit("_s", 1)[0],
                     **{k: run[k] for k in ("seed", "cas", "cas_over_trtr", "fid",
                                            "judge_accuracy", "seconds", "epoch")}})
write_json(Path(sys.argv[2]), rows)
by = collections.defaultdict(list)
for row in rows:
    by[row["variant"]].append(row)
for variant, runs in sorted(by.items()):
    cas = [r["cas"] for r in sorted(runs, key=lambda r: r["seed"])]
    print(f"{variant:14s} n={len(runs)} cas_mean={statistics.mean(cas):.4f} per_seed="
          + " ".join(f"{c:.4f}" for c in cas)
          + f" fid={statistics.mean(r['fid'] for r in runs):.3f}")
PY
