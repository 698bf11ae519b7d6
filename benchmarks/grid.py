"""The evaluate grid (variants × seeds) per Prefect task runner: wall time and fits per hour.

Prepares one data set (params.yaml + --set overrides), then runs the same grid of classifier
fits (``--variants`` × ``--seeds``; by default variants that need no GAN) once in process
(``stages.evaluate``, no Prefect: the reference numbers) and then as the evaluate flow under
each setting:

  threads-1   evaluate.runner: threads, workers: 1
  threads-N   evaluate.runner: threads, workers: N                (N = --workers, default 2)
  dask-Nx1    evaluate.runner: dask, evaluate.address of a distributed.LocalCluster started
              here (N worker processes × 1 thread) with the environment the evaluate flow gives
              its own local cluster (flows.evaluate.cluster_config: no MALLOC_TRIM_THRESHOLD_)
  dask-trim-Nx1  the same with dask's default worker environment (MALLOC_TRIM_THRESHOLD_=65536,
              what the evaluate flow's local cluster had before; not run unless asked)
  ray-N       evaluate.runner: ray on a local Ray instance started here with num_cpus=N and no
              dashboard (the runner finds it initialised and uses it)

A cluster's start-up is timed apart (``start_s``); ``flow_s`` is the flow alone and fits/hour is
counted on it. Every flow reports to one Prefect server started for the run (as ``python -m
flows repro`` does) — cluster workers inherit its ``PREFECT_API_URL`` and do not start servers
of their own. Checks that every setting's metrics json and per-seed tables equal the
in-process run's, byte for byte; exits 1 if not (after writing the json). Run with
OMP_NUM_THREADS=1 so a fit uses one core and N concurrent fits use N cores:

    OMP_NUM_THREADS=1 python benchmarks/grid.py                         # digits, params.yaml
    OMP_NUM_THREADS=1 python benchmarks/grid.py --data mnist --root ../shared/data \\
        --set prepare.max_per_class=1000 --name grid_mnist
    OMP_NUM_THREADS=1 python benchmarks/grid.py --set evaluate.epochs=1 --name grid_tiny  # smoke
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/grid.py` without PYTHONPATH
    sys.path.insert(0, str(ROOT))

from augment import stages  # noqa: E402
from augment.analysis import uses_gan  # noqa: E402
from augment.config import load_params  # noqa: E402
from augment.io import write_json  # noqa: E402

from augment.config import override  # noqa: E402
from benchmarks.evidence import SOURCES  # noqa: E402

PER_SEED = ("runs.csv", "per_class_recall.csv")  # what each fit writes, seed by seed
RUNNERS = ("threads-1", "threads-N", "dask-Nx1", "ray-N", "dask-trim-Nx1")
DEFAULT_RUNNERS = RUNNERS[:4]


def outputs(work: Path, prepared: Path, tag: str) -> dict:
    d = work / tag
    return dict(data=str(prepared), synthetic=str(work / "synthetic"),
                metrics=str(d / "evaluate.json"), plots=str(d / "plots"),
                report=str(d / "evaluate.md"))


def results(work: Path, tag: str) -> dict:
    """A run's metrics json and per-seed tables, as bytes on disk."""
    d = work / tag
    return {"evaluate.json": (d / "evaluate.json").read_text(),
            **{name: (d / "plots" / name).read_text() for name in PER_SEED}}


class Cluster:
    """What a setting needs around its flow: evaluate settings, and a cluster's start/stop."""

    def __init__(self, name: str, workers: int):
        self.name, self.workers = name, workers
        self.kind = name.split("-")[0]
        self._close = lambda: None

    def start(self) -> dict:
        """Start the setting's cluster (if any); returns its evaluate.* settings."""
        if self.kind == "threads":
            return {"runner": "threads", "workers": 1 if self.name == "threads-1" else self.workers}
        if self.kind == "dask":
            import contextlib

            import distributed

            from augment.config import EvaluateConfig
            from flows.evaluate import cluster_config

            os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # an earlier nanny set it here
            env = (contextlib.nullcontext() if "trim" in self.name
                   else cluster_config(EvaluateConfig(runner="dask")))
            with env:
                cluster = distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                                   processes=True, dashboard_address=":0")
            self._close = cluster.close
            return {"runner": "dask", "address": cluster.scheduler_address}
        import ray

        # a dask setting run before in this process left dask's MALLOC_TRIM_THRESHOLD_ here
        # (its nanny sets it in the starting process), and Ray's workers would inherit it
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # its workers import this checkout's augment/ and flows/
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
        self._close = ray.shutdown
        return {"runner": "ray", "address": None}

    def stop(self) -> None:
        self._close()
        self._close = lambda: None


def run_setting(name: str, workers: int, params: dict, work: Path, prepared: Path,
                repeat: int) -> dict:
    from flows.evaluate import evaluate_flow

    setting = Cluster(name, workers)
    starts, flows = [], []
    for i in range(repeat):
        t0 = time.perf_counter()
        evaluate = setting.start()
        starts.append(time.perf_counter() - t0)
        try:
            p = copy.deepcopy(params)
            p["evaluate"].update(evaluate)
            tag = f"{name}-{i}"
            (work / f"{tag}.yaml").write_text(yaml.safe_dump(p))
            t0 = time.perf_counter()
            state = evaluate_flow(params_path=str(work / f"{tag}.yaml"), return_state=True,
                                  **outputs(work, prepared, tag))
            flows.append(time.perf_counter() - t0)
            if not state.is_completed():
                raise RuntimeError(f"{name}: the flow ended {state.type.value}: {state.message}")
        finally:
            setting.stop()
    return {"setting": name, "evaluate": {k: v for k, v in evaluate.items() if k != "address"},
            "start_s": [round(s, 2) for s in starts], "flow_s": [round(s, 2) for s in flows],
            "tags": [f"{name}-{i}" for i in range(repeat)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", "--source", dest="data", choices=list(SOURCES),
                        default="digits", help="data set (prepare.source and its root)")
    parser.add_argument("--root", default=None,
                        help="prepare.root (default: the data set's, e.g. ../shared/data)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="params override (repeatable), e.g. --set evaluate.epochs=5")
    parser.add_argument("--variants", nargs="+", default=["real", "real+oversample"],
                        help="evaluate.variants (default: two that need no GAN)")
    parser.add_argument("--seeds", type=int, default=2, help="evaluate.seeds")
    parser.add_argument("--workers", type=int, default=2,
                        help="N: threads, dask worker processes and ray CPUs of the parallel "
                             "settings")
    parser.add_argument("--runners", nargs="+", choices=RUNNERS, default=list(DEFAULT_RUNNERS))
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per setting (fits/hour from the median flow time)")
    parser.add_argument("--work", default=None, help="outputs (default: a fresh temp folder)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    if any(uses_gan(v) for v in args.variants):
        parser.error("--variants: a GAN variant needs the train and synthesize stages first; "
                     "this benchmark runs prepare + evaluate only")

    import torch

    from flows.server import shared_server

    params = override(load_params(ROOT / "params.yaml"), args.set)
    params["prepare"].update(SOURCES[args.data], **({"root": args.root} if args.root else {}))
    params["evaluate"].update(variants=args.variants, seeds=args.seeds)
    fits = len(args.variants) * args.seeds
    work = Path(args.work or tempfile.mkdtemp(prefix="augment-grid-"))
    print(f"outputs under {work}")
    prepared = work / "prepared"
    summary = stages.prepare.run(params, out=str(prepared), metrics=str(work / "prepare.json"))

    t0 = time.perf_counter()
    stages.evaluate.run(params, **outputs(work, prepared, "in-process"))
    rows = [{"setting": "in-process", "evaluate": {}, "start_s": [0.0],
             "flow_s": [round(time.perf_counter() - t0, 2)], "tags": ["in-process"]}]
    reference = results(work, "in-process")
    t0 = time.perf_counter()
    with shared_server() as url:
        server_s = time.perf_counter() - t0
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: url}):
            for name in args.runners:
                label = name.replace("N", str(args.workers))
                rows.append(run_setting(label, args.workers, params, work, prepared,
                                        args.repeat))
                print(f"  {label}: flow {rows[-1]['flow_s']} s", flush=True)

    print(f"{args.data}: {fits} fits ({len(args.variants)} variants × {args.seeds} seeds), "
          f"{summary['n_train']} train images, evaluate.epochs {params['evaluate']['epochs']}; "
          f"Prefect server start {server_s:.1f} s; {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"{'setting':<14}{'start s':>9}{'flow s':>9}{'fits/hour':>11}{'vs threads-1':>14}"
          f"  same numbers")
    base = None
    for r in rows:
        r["flow_median_s"] = statistics.median(r["flow_s"])
        r["fits_per_hour"] = round(fits * 3600 / r["flow_median_s"], 1)
        r["identical"] = all(results(work, tag) == reference for tag in r["tags"])
        if r["setting"] == "threads-1":
            base = r["flow_median_s"]
    for r in rows:
        r["speedup_vs_threads_1"] = round(base / r["flow_median_s"], 2) if base else None
        print(f"{r['setting']:<14}{statistics.median(r['start_s']):>9.1f}"
              f"{r['flow_median_s']:>9.1f}{r['fits_per_hour']:>11.0f}"
              f"{r['speedup_vs_threads_1'] or float('nan'):>14.2f}  {r['identical']}")
    identical = all(r["identical"] for r in rows)
    print(f"metrics identical across runners: {identical}")

    import prefect

    versions = {"prefect": prefect.__version__, "torch": torch.__version__}
    for module in ("distributed", "prefect_dask", "ray", "prefect_ray"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            pass
    report = {"data": args.data, "overrides": args.set, "variants": args.variants,
              "seeds": args.seeds, "fits": fits, "workers": args.workers, "repeat": args.repeat,
              "n_train": summary["n_train"], "evaluate_epochs": params["evaluate"]["epochs"],
              "prefect_server_start_s": round(server_s, 2), "rows": rows,
              "identical": identical, "cpu_count": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "torch_threads": torch.get_num_threads(), "versions": versions}
    write_json(Path(args.out) / f"{args.name or 'grid_' + args.data}.json", report)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
