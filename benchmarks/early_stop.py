"""Early stopping on the judge's domain FID (``train.patience``), replayed on full runs.

A run with ``train.patience`` is the run without it, epoch for epoch, cut short at the first
checkpoint where :func:`augment.selection.stalled` holds (tests/test_budget.py checks it loss for
loss). So one full run per (data, seed), scored at every checkpoint, tells what each patience
would have done: the epoch it stops at (the share of the training time it saves: epochs cost
alike) and the domain FID of the best checkpoint up to there, against the full run's best.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/early_stop.py --data digits --seeds 0 1 2 \\
        --set train.epochs=100 --set train.checkpoint_every=5 --name early_stop_digits

``--runs DIR ...`` replays run folders already trained (``gan.pt``, ``train_config.json``) instead
of ``--seeds``; the json is written after every seed, so an interrupted benchmark keeps the
seeds it finished.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import pandas as pd

from augment.checkpoint import load_checkpoint
from augment.config import load_params, override
from augment.io import write_json
from augment.selection import stalled
from benchmarks.evidence import ROOT, SOURCES, run_pipeline

PATIENCE = (1, 2, 3, 5)


def replay(history: list[dict], patience: int) -> tuple[int, float]:
    """(the epoch a run with ``patience`` stops at, the lowest FID of its checkpoints)."""
    for i in range(len(history)):
        if "fid" in history[i] and stalled(history[:i + 1], patience):
            break
    seen = [h["fid"] for h in history[:i + 1] if "fid" in h]
    return history[i]["epoch"], min(seen)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=list(SOURCES), default="digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default="early_stop")
    parser.add_argument("--runs", nargs="+", metavar="DIR", help="replay these trained runs")
    args = parser.parse_args(argv)
    base = override(load_params(ROOT / "params.yaml"), ["prepare.imbalance_ratio=1", *args.set])
    base["prepare"].update(SOURCES[args.data])
    runs, rows = [], []
    for item in args.runs or args.seeds:
        if args.runs:  # a trained run: the seed its train stage recorded
            work, seconds = Path(item), {}
            seed = json.loads((work / "train_config.json").read_text())["seed"]
        else:
            seed, work = item, Path(tempfile.mkdtemp(prefix="augment-early-stop-"))
            seconds = run_pipeline({**copy.deepcopy(base), "seed": seed}, work, upto="train")[1]
        history = load_checkpoint(work / "gan.pt")["history"]
        epochs = history[-1]["epoch"]
        full = min(h["fid"] for h in history if "fid" in h)
        runs.append({"seed": seed, "epochs": epochs, "train_seconds": seconds.get("train"),
                     "fid_curve": [(h["epoch"], h["fid"]) for h in history if "fid" in h]})
        for p in PATIENCE:
            stop, fid = replay(history, p)
            rows.append({"seed": seed, "patience": p, "stop_epoch": stop,
                         "saved": 1 - stop / epochs, "fid": fid, "full_fid": full,
                         "fid_ratio": fid / full})
        print(pd.DataFrame(rows[-len(PATIENCE):]).to_string(index=False), flush=True)
        write_json(Path(args.out) / f"{args.name}.json",  # after every seed
                   {"data": args.data, "overrides": args.set, "runs": runs, "rows": rows})
    table = pd.DataFrame(rows).groupby("patience")[["saved", "fid_ratio"]].agg(["mean", "min",
                                                                                "max"])
    print(table.to_string(float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
