"""A torch training step in a local dask worker: dask's default worker environment against the
one the evaluate flow gives its own local cluster (``flows.evaluate.cluster_config``).

dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``; under it glibc returns
freed memory at once and torch, which frees and allocates large blocks every step, slows down.
Each round runs the same one-thread conv net (30 SGD steps, batch 256 at 28×28) as a Prefect
task on a fresh 1-worker local cluster, once per environment; prints a table, writes json.

    OMP_NUM_THREADS=1 python benchmarks/dask_worker.py --rounds 3 --name dask_worker
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefect import flow, task  # noqa: E402

from augment.config import EvaluateConfig  # noqa: E402
from augment.io import write_json  # noqa: E402
from flows.evaluate import cluster_config, task_runner  # noqa: E402


@task
def step_seconds(steps: int) -> tuple[str | None, float]:
    """The worker's MALLOC_TRIM_THRESHOLD_ and the seconds of ``steps`` training steps."""
    import time

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 64, 3, padding=1, stride=2), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(64 * 14 * 14, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), time.perf_counter() - start


@flow
def probe(steps: int):
    return step_seconds.submit(steps).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default="dask_worker")
    args = parser.parse_args()
    cfg = EvaluateConfig(runner="dask")
    settings = {"flow's local cluster": lambda: cluster_config(cfg),
                "dask default": contextlib.nullcontext}
    runs = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, env in settings.items():
            os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # the last nanny set it here
            with env():
                trim, seconds = probe.with_options(task_runner=task_runner(cfg))(args.steps)
            runs[name].append({"MALLOC_TRIM_THRESHOLD_": trim, "seconds": round(seconds, 3)})
    print(f"{'worker environment':<24}{'MALLOC_TRIM_THRESHOLD_':>24}{'median s':>10}  runs")
    rows = []
    for name, got in runs.items():
        median = statistics.median(r["seconds"] for r in got)
        rows.append({"setting": name, "runs": got, "median_s": median})
        print(f"{name:<24}{str(got[0]['MALLOC_TRIM_THRESHOLD_']):>24}{median:>10.2f}  "
              f"{[r['seconds'] for r in got]}")
    write_json(Path(args.out) / f"{args.name}.json",
               {"steps": args.steps, "rounds": args.rounds, "cores": os.cpu_count(),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "rows": rows})


if __name__ == "__main__":
    main()
