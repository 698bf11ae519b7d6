"""Batch order before and after resumable training: does the shuffle's seeding change quality?

Before, one generator seeded once per run drew every epoch's permutation; now each epoch's comes
from (seed, epoch) alone, so ``--resume`` replays the batches of an uninterrupted run. Both are
uniform shuffles; this trains the pipeline's train config on the prepared data with each, over
several seeds, and scores the final EMA generator with the judge (domain FID, judge accuracy,
lowest per-class diversity). Needs ``data/prepared`` and ``models/judge.pt`` (``make repro``).

    OMP_NUM_THREADS=1 python benchmarks/batch_order.py --order before --seeds 0 1 2 3
    OMP_NUM_THREADS=1 python benchmarks/batch_order.py --order now --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

import augment.train as T
from augment import selection
from augment.config import load_params, stage_config
from augment.data import load_prepared
from augment.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def run(order: str, seeds: list[int]) -> pd.DataFrame:
    cfg = stage_config(load_params(ROOT / "params.yaml"), "train")
    real = load_prepared(ROOT / "data" / "prepared", splits=("train",))["train"]
    rows = []
    for seed in seeds:
        if order == "before":  # one generator for the whole run, as before
            shared = torch.Generator().manual_seed(seed)
            T.epoch_generator = lambda s, e, g=shared: g
        gan = T.train_gan(real, cfg, seed=seed, device="cpu")
        judge = selection.quality_probe(str(ROOT / "models" / "judge.pt"), real, seed=seed,
                                        device="cpu")
        report = judge(gan.ema.module)
        rows.append({"order": order, "seed": seed, **{k: report[k] for k in
                     ("fid", "judge_accuracy", "diversity_min")}})
        print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--order", choices=["before", "now"], required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    table = run(args.order, args.seeds)
    print(table.round(4).to_string(index=False))
    print(table[["fid", "judge_accuracy", "diversity_min"]].agg(["mean", "std"]).round(4))
    write_json(ROOT / "benchmarks" / "results" / f"batch_order_{args.order}.json",
               {"args": vars(args), "runs": table.to_dict("records")})


if __name__ == "__main__":
    main()
