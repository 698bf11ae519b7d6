"""Data-parallel GAN training: images/s on 1 vs N ranks, and how far the loss curve moves.

Trains the conditional GAN (``augment.train.train_gan``, the train stage's loop, params.yaml's
train section resolved for the device) on the MNIST subset at 28×28 (``--source digits`` for the
embedded 8×8 set) at one global batch size, for each setting of ``--ranks``:
  1 rank × T threads (T = --threads, default: all cores) and N ranks via torchrun's launcher
  (``augment.distributed.launch``: gloo on the CPU with the cores shared, NCCL one rank per GPU).
Reports training images/s (balanced-epoch images × epochs / the loop's wall time on rank 0,
after a warm-up epoch; launch and imports excluded, shown apart), and the mean absolute gap of
the per-epoch D and G losses to the 1-rank run. Prints a table, writes json.

    PYTHONPATH=. python benchmarks/ranks.py --ranks 1 2 --name ranks_cpu
    PYTHONPATH=. python benchmarks/ranks.py --ranks 1 2 4 8 --batch 256 --name ranks_gpu
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from augment import distributed
from augment.config import load_params, stage_config
from augment.data import ImageSet, balanced_index
from augment.io import write_json
from augment.sources import load_source

ROOT = Path(__file__).resolve().parents[1]


def _data(source: str, root: str, per_class: int) -> ImageSet:
    pool = load_source(source, root=root).pool
    keep = np.concatenate([np.flatnonzero(pool.labels == c)[:per_class]
                           for c in range(len(pool.classes))])
    return ImageSet(pool.images[keep], pool.labels[keep], pool.classes)


def _train(npz: str, cfg, seed: int, warmup: int) -> dict:
    """On every rank: ``warmup`` epochs untimed, then ``cfg.epochs`` timed (rank 0's clock)."""
    from augment.train import train_gan

    world = distributed.current()
    with np.load(npz) as f:
        data = ImageSet(f["images"], f["labels"], tuple(f["classes"].tolist()))
    marks, history = {}, []

    def on_epoch(epoch, metrics, gan):
        history.append(metrics)
        if gan.device.type == "cuda":
            torch.cuda.synchronize()
        marks[epoch] = time.perf_counter()

    total = warmup + cfg.epochs
    import dataclasses
    train_gan(data, dataclasses.replace(cfg, epochs=total), seed=seed, device=cfg.device,
              on_epoch=on_epoch, world=world)
    return {"seconds": marks[total] - marks[warmup] if warmup else None,
            "history": history[warmup:], "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the 1-rank run (default: all cores)")
    parser.add_argument("--source", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: preset)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="ranks")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    from augment.runtime import resolve_device
    from augment.train import resolve_for_data

    data = _data(args.source, args.root, args.per_class)
    device = resolve_device(args.device)
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["train"].update(epochs=args.epochs, device=device.type,
                           **({"batch_size": args.batch} if args.batch else {}))
    cfg = resolve_for_data(stage_config(params, "train"), data, device)
    pool = len(balanced_index(data.labels, seed=args.seed))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = str(Path(tmp) / "data.npz")
        np.savez(npz, images=data.images, labels=data.labels, classes=np.array(data.classes))
        for ranks in args.ranks:
            start = time.perf_counter()
            if ranks == 1:
                threads = torch.get_num_threads()
                if args.threads:
                    torch.set_num_threads(args.threads)
                result = _train(npz, cfg, args.seed, args.warmup)
                torch.set_num_threads(threads)
            else:
                result = distributed.launch(_train, ranks, npz, cfg, args.seed, args.warmup)
            wall = time.perf_counter() - start
            rows.append({"ranks": ranks, "threads_per_rank": result["threads"],
                         "images_per_s": pool * args.epochs / result["seconds"],
                         "timed_s": result["seconds"], "wall_s": wall,
                         "history": result["history"]})
            print(f"{ranks} rank(s): {rows[-1]['images_per_s']:.0f} images/s", flush=True)
    base = rows[0]["history"]
    for row in rows:
        row["loss_gap"] = float(np.mean([abs(a[k] - b[k]) for a, b in zip(row["history"], base)
                                         for k in ("d_loss", "g_loss")]))
    print(f"\n{args.source} {tuple(data.images.shape[1:])}, {len(data.labels)} images "
          f"({pool} per balanced epoch), {cfg.preset} width {cfg.width}, global batch "
          f"{cfg.batch_size}, {device}, {args.epochs} timed epochs after {args.warmup}")
    print(f"{'ranks':>5} {'threads/rank':>12} {'images/s':>9} {'speed-up':>8} {'loss gap':>8} "
          f"{'wall s':>7}")
    for row in rows:
        print(f"{row['ranks']:>5} {row['threads_per_rank']:>12} {row['images_per_s']:>9.0f} "
              f"{row['images_per_s'] / rows[0]['images_per_s']:>8.2f} {row['loss_gap']:>8.3f} "
              f"{row['wall_s']:>7.1f}")
    write_json(Path(args.out) / f"{args.name}.json",
               {"args": vars(args), "device": str(device), "cpu_count": os.cpu_count(),
                "config": {k: v for k, v in vars(cfg).items()}, "pool": pool, "rows": rows})


if __name__ == "__main__":
    main()
