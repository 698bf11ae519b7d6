"""Does train.minutes hold? The train stage's wall time against its budget, idle and loaded.

Prepares the data (``--source``, class-balanced), fits the judge, then runs the train stage
(``augment.stages.train``, params.yaml's train section, the judge scoring every checkpoint)
with ``train.minutes`` = --minutes, once on an otherwise idle machine and once beside a load: a
second process training the same GAN on one thread (one other job on the other core). Reports
the stage's wall time, the loop's seconds (the budget's clock: training steps), the rest
(set-up, the judge scoring each checkpoint, the sample grid, writes) and the epochs reached,
with a trace of every epoch: its seconds and the plan after it (the decay fixes the plan; an
end off the budget shows here as the epochs after that which ran slower or faster than the
pace it assumed). Prints a table, writes json.

    OMP_NUM_THREADS=2 python benchmarks/budget.py --source mnist --minutes 2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from augment import stages
from augment.budget import Budget
from augment.config import load_params
from augment.io import write_json

ROOT = Path(__file__).resolve().parents[1]
LOAD = ("import sys; from augment.config import TrainConfig; from augment.data import "
        "load_prepared; from augment.train import train_gan; import torch; "
        "torch.set_num_threads(1); d = load_prepared(sys.argv[1], splits=('train',))['train']; "
        "train_gan(d, TrainConfig(epochs=10_000), seed=1, device='cpu')")


@contextlib.contextmanager
def traced(trace: list):
    """Within: record each epoch's seconds and the plan after it, as ``Budget.end_epoch`` leaves
    them (the train stage runs in this process)."""
    end_epoch = Budget.end_epoch

    def end_and_record(self, world=None):
        end_epoch(self, world)
        trace.append({"epoch": self.done, "s": round(self._recent[-1], 2), "plan": self.epochs})
    Budget.end_epoch = end_and_record
    try:
        yield
    finally:
        Budget.end_epoch = end_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="mnist")
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--loads", nargs="+", default=["idle", "loaded"])
    parser.add_argument("--name", default="budget", help="results/<name>.json")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["prepare"].update(source=args.source, root=args.root, imbalance_ratio=1.0)
    params["train"].update(minutes=args.minutes)
    rows, trace = [], []
    with traced(trace), tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        stages.prepare.run(params, out=str(d / "prepared"), metrics=str(d / "prepare.json"))
        stages.judge.run(params, data=str(d / "prepared"), out=str(d / "judge.pt"),
                         metrics=str(d / "judge.json"))
        for load in args.loads:
            other = (subprocess.Popen([sys.executable, "-c", LOAD, str(d / "prepared")], cwd=ROOT)
                     if load == "loaded" else None)
            trace.clear()
            try:
                time.sleep(5 if other else 0)  # the load is running before the clock starts
                start = time.perf_counter()
                out = stages.train.run(params, data=str(d / "prepared"), out=str(d / f"{load}.pt"),
                                       samples=str(d / f"{load}.png"), logdir=str(d / load),
                                       judge=str(d / "judge.pt"), quality=str(d / f"{load}_q.json"),
                                       settings=str(d / f"{load}_settings.json"))
                wall = time.perf_counter() - start
            finally:
                if other:
                    other.kill()
                    other.wait()
            spent = torch.load(d / f"{load}.pt", weights_only=True)["budget"]["spent"]
            used = json.loads((d / f"{load}_settings.json").read_text())
            row = {"load": load, "minutes": args.minutes, "wall_s": round(wall, 1),
                   "loop_s": round(spent, 1), "outside_loop_s": round(wall - spent, 1),
                   "loop_over_budget": round(spent / (args.minutes * 60), 4),
                   "epochs": used["epochs"], "fid": out["quality"].get("fid")}
            print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
            rows.append(row | {"trace": list(trace)})
    write_json(Path(args.out) / f"{args.name}.json",
               {"source": args.source, "threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
