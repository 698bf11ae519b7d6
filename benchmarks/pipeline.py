"""Pipeline wall time per stage, and what Prefect and DVC add on top of the work.

For each stage, in a temporary git copy of this repository (params.yaml + --set overrides):
  bare    `augment <stage>`         (one Python process: imports + work, no Prefect)
  flow    `python -m flows <stage>` (the same as a Prefect flow, each process starting
                                     Prefect's ephemeral server: plain `dvc repro`)
  shared  `python -m flows <stage>` with PREFECT_API_URL set to one server started once
          (what `python -m flows repro` and `make repro` do)
then `dvc repro -f` of the whole pipeline both ways. Prints a table, writes benchmarks/results/*.json.

    python benchmarks/pipeline.py                                  # params.yaml: make repro's run
    python benchmarks/pipeline.py --set prepare.imbalance_ratio=1 --name digits_balanced
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from augment.config import override

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "judge", "train", "synthesize", "evaluate")
COPY = ["augment", "flows", "dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore"]


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def make_repo(overrides: list[str]) -> tuple[Path, dict]:
    repo = Path(tempfile.mkdtemp(prefix="augment-bench-"))
    for item in COPY:
        (repo / item).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, repo / item)
    params = override(yaml.safe_load((repo / "params.yaml").read_text()), overrides)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    return repo, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params override, e.g. train.epochs=10 (repeatable)")
    parser.add_argument("--name", default="pipeline", help="results/<name>.json")
    parser.add_argument("--dvc-only", action="store_true",
                        help="only `dvc repro -s <stage>` per stage (for long runs)")
    args = parser.parse_args()
    repo, env = make_repo(args.set)
    bin_dir = Path(sys.executable).parent
    if args.dvc_only:
        return dvc_only(repo, env, args)
    from flows.server import shared_server

    import_s = timed([sys.executable, "-c", "import augment.stages"], repo, env)
    prefect_import_s = timed([sys.executable, "-c", "import prefect"], repo, env)
    rows = [{"stage": s} for s in STAGES]
    for r in rows:
        r["bare_s"] = timed([str(bin_dir / "augment"), r["stage"]], repo, env)
        r["flow_s"] = timed([sys.executable, "-m", "flows", r["stage"]], repo, env)
    t0 = time.perf_counter()
    with shared_server() as url:
        server_start_s = time.perf_counter() - t0
        shared_env = {**env, "PREFECT_API_URL": url}
        for r in rows:
            r["shared_s"] = timed([sys.executable, "-m", "flows", r["stage"]], repo, shared_env)
    for r in rows:
        for key in ("flow", "shared"):
            r[f"{key}_overhead_s"] = r[f"{key}_s"] - r["bare_s"]
    dvc_s = timed([str(bin_dir / "dvc"), "repro", "-f"], repo, env)
    dvc_shared_s = timed([sys.executable, "-m", "flows", "repro", "-f"], repo, env)
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    result = {"overrides": args.set, "import_augment_stages_s": import_s,
              "import_prefect_s": prefect_import_s, "server_start_s": server_start_s,
              "stages": rows, "dvc_repro_s": dvc_s, "flows_repro_shared_server_s": dvc_shared_s,
              "metrics": metrics, "cpu_count": os.cpu_count()}
    print(f"{'stage':<12}{'bare s':>8}{'flow s':>8}{'+s':>7}{'shared s':>10}{'+s':>7}")
    for r in [*rows, {"stage": "total", **{k: sum(r[k] for r in rows) for k in rows[0]
                                            if k != "stage"}}]:
        print(f"{r['stage']:<12}{r['bare_s']:>8.1f}{r['flow_s']:>8.1f}{r['flow_overhead_s']:>7.1f}"
              f"{r['shared_s']:>10.1f}{r['shared_overhead_s']:>7.1f}")
    print(f"dvc repro -f: {dvc_s:.1f} s (ephemeral server per stage); python -m flows repro -f: "
          f"{dvc_shared_s:.1f} s (one server, its start-up {server_start_s:.1f} s included); "
          f"'import augment.stages' {import_s:.1f} s, 'import prefect' {prefect_import_s:.1f} s")
    print(metrics.get("verdict", ""))
    out = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(repo, ignore_errors=True)


def dvc_only(repo: Path, env: dict, args) -> None:
    """Time `dvc repro -s <stage>` for each stage in order; report metrics."""
    dvc = str(Path(sys.executable).parent / "dvc")
    rows = [{"stage": s, "dvc_s": timed([dvc, "repro", "-s", s], repo, env)} for s in STAGES]
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    prepared = json.loads((repo / "metrics" / "prepare.json").read_text())
    result = {"overrides": args.set, "stages": rows, "total_s": sum(r["dvc_s"] for r in rows),
              "metrics": metrics, "prepare": prepared, "cpu_count": os.cpu_count()}
    for r in rows:
        print(f"{r['stage']:<12}{r['dvc_s']:>9.1f} s")
    print(f"{'total':<12}{result['total_s']:>9.1f} s")
    print(metrics.get("verdict", ""))
    out = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
