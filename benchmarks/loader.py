"""DataLoader throughput of augment.SyntheticDataset: drawn from a checkpoint vs read from the
synthesize stage's PNG folder, with 0 and 2 workers, at 28×28×1 and 32×32×3 (images/s).

Each source serves --n images (10 classes) through ``DataLoader(batch_size=64, shuffle=True)``:
one warm-up epoch (workers start), then --epochs timed epochs (persistent workers). The
checkpoint is a ``dcgan`` generator at the CPU defaults for the shape (width 16 above 16 px,
z 64) with random weights and warmed batch-norm statistics: a trained one costs the same
arithmetic. ``synthesize()`` (batch 256, one stream) is the ceiling a batched draw reaches.
Prints a table, writes json.

    OMP_NUM_THREADS=2 python benchmarks/loader.py
    python benchmarks/loader.py --device cuda --name loader_gpu     # a checkpoint on the GPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from augment.checkpoint import save_checkpoint
from augment.datasets import SyntheticDataset
from augment.io import write_json
from augment.models import build_generator
from augment.synthesis import synthesize, write_synthetic

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"mnist28": (1, 28), "rgb32": (3, 32)}
CLASSES = tuple(str(c) for c in range(10))


def checkpoint(path: Path, channels: int, size: int) -> Path:
    """A dcgan generator checkpoint of this shape (random weights, warmed BN statistics)."""
    hparams = dict(preset="dcgan", image_shape=[channels, size, size], num_classes=10, z_dim=64,
                   width=16)
    torch.manual_seed(0)
    generator = build_generator(hparams).train()
    with torch.no_grad():
        generator(torch.randn(512, 64), torch.randint(0, 10, (512,)))
    save_checkpoint(path, {"hparams": hparams, "classes": list(CLASSES),
                           "generator": generator.state_dict()})
    return path


def images_per_s(dataset, workers: int, epochs: int) -> float:
    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    for _ in loader:  # warm-up: workers start, pages are read
        pass
    start = time.perf_counter()
    n = sum(len(y) for _ in range(epochs) for _, y in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096, help="images per source")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="cpu", help="the checkpoint's device")
    parser.add_argument("--name", default="loader", help="results/<name>.json")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, (channels, size) in SHAPES.items():
            ckpt = checkpoint(Path(tmp) / f"{shape}.pt", channels, size)
            per_class = args.n // 10
            start = time.perf_counter()
            images, labels = synthesize(ckpt, per_class, seed=0, device=args.device, amp=False)
            ceiling = len(labels) / (time.perf_counter() - start)
            folder = Path(tmp) / f"{shape}_png"
            write_synthetic(folder, images, labels, CLASSES)
            sources = {"checkpoint": SyntheticDataset(ckpt, counts=per_class, device=args.device),
                       "png folder": SyntheticDataset(folder)}
            for source, dataset in sources.items():
                for workers in args.workers:
                    if workers and args.device != "cpu" and source == "checkpoint":
                        continue  # CUDA in forked workers: not supported; workers=0 there
                    rate = images_per_s(dataset, workers, args.epochs)
                    rows.append({"shape": shape, "source": source, "workers": workers,
                                 "images_per_s": round(rate, 1)})
                    print(f"{shape:>8} {source:>11} workers {workers}: {rate:9.0f} images/s",
                          flush=True)
            rows.append({"shape": shape, "source": "synthesize() batch 256", "workers": 0,
                         "images_per_s": round(ceiling, 1)})
            print(f"{shape:>8} synthesize() batch 256: {ceiling:9.0f} images/s", flush=True)
    write_json(Path(args.out) / f"{args.name}.json",
               {"device": args.device, "threads": torch.get_num_threads(),
                "torch": torch.__version__, "n": args.n, "rows": rows})


if __name__ == "__main__":
    main()
