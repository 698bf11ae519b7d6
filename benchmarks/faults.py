"""Wall time lost to a SIGKILL in the middle of the train stage, with and without resuming.

In a temporary workspace (prepare + judge once), runs ``augment train`` as a real process:
  clean    uninterrupted: T seconds
  resumed  killed (SIGKILL) at ``--kill-at`` x T, then rerun: it resumes from its last checkpoint
  restart  killed the same way, then rerun without its checkpoints (what happened before
           resuming existed: the rerun starts at epoch 0)
Lost time = time to the kill + the rerun's time - T. Also checks that the resumed run's
checkpoint equals the clean run's byte for byte. Prints a table, writes benchmarks/results/.

    python benchmarks/faults.py --data mnist --name s14_faults_mnist
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def stage(workdir: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "augment"), *args], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def train_args(name: str) -> list[str]:
    return ["train", "--out", f"{name}/gan.pt", "--resume-dir", f"{name}/resume",
            "--samples", f"{name}/samples.png", "--logdir", f"{name}/live",
            "--quality", f"{name}/quality.json", "--settings", f"{name}/settings.json"]


def timed(workdir: Path, env: dict, args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = stage(workdir, env, *args)
    _, err = proc.communicate()
    if proc.returncode:
        sys.exit(f"augment {' '.join(args)} failed:\n{err[-3000:]}")
    return time.perf_counter() - t0


def killed(workdir: Path, env: dict, args: list[str], after: float) -> None:
    proc = stage(workdir, env, *args)
    time.sleep(after)
    if proc.poll() is not None:
        sys.exit(f"the run ended before the kill at {after:.0f} s")
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="mnist", help="prepare.source (default: %(default)s)")
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of T")
    parser.add_argument("--name", default="faults")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="augment-faults-"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # the library default, not the demo's long tail: the s14 record trained on all of MNIST
    params["prepare"].update(source=args.data, root=args.root,
                             imbalance_ratio=1.0)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "augment", workdir / "augment")  # a snapshot: edits meanwhile
    env = {**os.environ, "PYTHONPATH": str(workdir)}           # would change the fingerprint
    timed(workdir, env, ["prepare"])
    timed(workdir, env, ["judge"])
    clean = timed(workdir, env, train_args("clean"))
    kill_at = args.kill_at * clean
    killed(workdir, env, train_args("resumed"), kill_at)
    resumed = timed(workdir, env, train_args("resumed"))
    killed(workdir, env, train_args("restart"), kill_at)
    shutil.rmtree(workdir / "restart" / "resume")  # no checkpoint to resume from
    restart = timed(workdir, env, train_args("restart"))
    rows = [{"run": "resumed", "rerun_s": resumed, "lost_s": kill_at + resumed - clean},
            {"run": "restart (before)", "rerun_s": restart, "lost_s": kill_at + restart - clean}]
    same = md5(workdir / "clean" / "gan.pt") == md5(workdir / "resumed" / "gan.pt")
    epochs = json.loads((workdir / "clean" / "settings.json").read_text())["epochs"]
    print(f"{args.data}: clean train {clean:.0f} s ({epochs} epochs, checkpoint every "
          f"{params['train']['checkpoint_every']}); SIGKILL at {kill_at:.0f} s")
    print(f"{'run':<18}{'rerun s':>9}{'lost s':>9}")
    for r in rows:
        print(f"{r['run']:<18}{r['rerun_s']:>9.0f}{r['lost_s']:>9.0f}")
    print(f"resumed checkpoint == clean checkpoint, byte for byte: {same}")
    result = {"data": args.data, "clean_s": clean, "kill_at_s": kill_at, "epochs": epochs,
              "checkpoint_every": params["train"]["checkpoint_every"], "rows": rows,
              "resumed_equals_clean": same, "cpu_count": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    out = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
