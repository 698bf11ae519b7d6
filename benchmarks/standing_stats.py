"""Standing statistics: does re-estimating the EMA generator's batch-norm statistics help CAS?

The sampling generator is the EMA of G's weights; its batch-norm running statistics are the EMA
of the raw G's running statistics, i.e. statistics of *other* weights. BigGAN (Brock et al.
2019, "standing statistics") re-estimates them by running the sampling generator in train mode
over many fresh batches. This benchmark trains one run per seed at the shipped defaults
(``--params``, as ``cas.py --minutes``), keeps the final EMA generator, and scores it twice on
the same draw seeds: as trained, and with standing statistics. Paired on one generator, so the
training noise cancels; ``--repeats`` averages the classifier noise.

    OMP_NUM_THREADS=2 python benchmarks/standing_stats.py --data mnist --root ../shared/data \
        --params params.yaml --budget 300 --seeds 0 --repeats 3 --name standing_mnist_s0
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from augment.config import load_params, stage_config
from augment.io import atomic_path, write_json
from augment.models import build_generator
from augment.runtime import mixed_precision
from benchmarks.cas import CACHE, FOLDERS, load_splits, references, score_snapshot, \
    train_with_snapshots

ROOT = Path(__file__).resolve().parents[1]


class _Latents(nn.Module):
    """G as a one-input module for torch's ``update_bn``: each row is z with its label last."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, zy: torch.Tensor) -> torch.Tensor:
        return self.generator(zy[:, :-1], zy[:, -1].long())


def standing_stats(generator: nn.Module, *, batches: int, batch_size: int, seed: int,
                   amp: bool = True) -> nn.Module:
    """A copy of ``generator`` whose batch norms hold the cumulative mean of their batch
    statistics over ``batches`` fresh class-balanced batches (torch's ``update_bn``)."""
    g = copy.deepcopy(generator).eval()
    rng = torch.Generator().manual_seed(seed)
    k, z_dim = g.hparams["num_classes"], g.hparams["z_dim"]
    draws = [torch.cat([torch.randn(batch_size, z_dim, generator=rng),
                        torch.randperm(batch_size, generator=rng).remainder(k)[:, None]], dim=1)
             for _ in range(batches)]
    device = next(g.parameters()).device
    with mixed_precision(device, amp)():
        update_bn(draws, _Latents(g).eval(), device=device)  # it restores this mode
    return g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="mnist", choices=["digits", "mnist", *FOLDERS])
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--max-per-class", type=int, default=None)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--budget", type=float, default=300.0, help="train.minutes × 60")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--clf-epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=40, help="standing-stat batches")
    parser.add_argument("--stat-batch", type=int, default=256)
    parser.add_argument("--keep", default=str(CACHE), help="where the trained EMA state goes")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        splits = load_splits(args.data, args.root, seed, args.max_per_class)
        trtr, judge = references(splits, data=args.data, seed=seed, epochs=args.clf_epochs,
                                 cap=args.max_per_class)
        cfg = dataclasses.replace(stage_config(load_params(args.params), "train"),
                                  minutes=args.budget / 60, device="cpu")
        saved = Path(args.keep) / f"{args.name}_ema_s{seed}.pt"
        if saved.exists():
            snap = torch.load(saved, weights_only=True)
        else:
            (snap,) = train_with_snapshots(splits["train"], cfg, seed=seed, budget=args.budget,
                                           fractions=[1.0])
            snap = {k: snap[k] for k in ("hparams", "state", "epoch")}
            with atomic_path(saved) as tmp:
                torch.save(snap, tmp)
        generator = build_generator(snap["hparams"])
        generator.load_state_dict(snap["state"])
        standing = standing_stats(generator, batches=args.batches, batch_size=args.stat_batch,
                                  seed=seed + 777)
        arms = {"ema": snap["state"], "standing": standing.state_dict()}
        for arm, state in arms.items():
            score = score_snapshot({"hparams": snap["hparams"], "state": state}, splits, judge,
                                   seed=seed, epochs=args.clf_epochs, filter_threshold=0.0,
                                   repeats=args.repeats)
            row = {"data": args.data, "seed": seed, "arm": arm, "epoch": snap["epoch"],
                   "trtr": trtr, **score, "cas_over_trtr": score["cas"] / trtr}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "recall"}), flush=True)
    write_json(ROOT / "benchmarks" / "results" / f"{args.name}.json", rows)


if __name__ == "__main__":
    main()
