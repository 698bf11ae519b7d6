"""examples/train_loop.py against the evaluate stage: the same numbers for the same variant and seed?

The prepared splits (``data/prepared``, from ``make repro``) and the synthesize stage's folder
(``data/synthetic``) are written as ImageFolders, and the example runs on them with the evaluate
section's classifier budget. ImageFolder lists files class by class, so the stage's
:func:`augment.evaluate.evaluate_variant` gets the same splits sorted by class (the draws index
the same images on both sides). Prints a table, writes json.

    OMP_NUM_THREADS=1 python benchmarks/example_vs_stage.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from augment.config import load_params, stage_config
from augment.data import ImageSet, load_prepared, load_synthetic
from augment.evaluate import common_steps, evaluate_variant
from augment.io import write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import train_loop  # noqa: E402


def write_folder(root: Path, data: ImageSet) -> None:
    for i, (image, label) in enumerate(zip(data.images, data.labels)):
        path = root / data.classes[label] / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        array = image.transpose(1, 2, 0)
        Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", default=str(ROOT / "data" / "prepared"))
    parser.add_argument("--synthetic", default=str(ROOT / "data" / "synthetic"))
    parser.add_argument("--name", default="example_vs_stage", help="results/<name>.json")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    cfg = stage_config(load_params(ROOT / "params.yaml"), "evaluate")
    splits = {s: d.subset(np.argsort(d.labels, kind="stable"))
              for s, d in load_prepared(args.data).items()}
    fake = load_synthetic(args.synthetic)
    steps = common_steps(["real", "real+synthetic"], splits["train"].labels, fake[1],
                         batch_size=cfg.batch_size)
    budget = {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "width")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in splits.items():
            write_folder(Path(tmp) / name, part)
        for seed in args.seeds:
            start = time.perf_counter()
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                train_loop.main([*(f"--{s}={Path(tmp) / s}" for s in ("train", "val", "test")),
                                 f"--synthetic={args.synthetic}", f"--seed={seed}",
                                 *(f"--{k.replace('_', '-')}={v}" for k, v in budget.items())])
            example_s = time.perf_counter() - start
            got = dict(re.findall(r"(\S+): test balanced accuracy ([0-9.]+)", printed.getvalue()))
            for variant in ("real", "real+synthetic"):
                run = evaluate_variant(variant, splits, fake, seed=seed, steps_per_epoch=steps,
                                       device="cpu", **budget)
                stage = f"{run['balanced_accuracy']:.4f}"
                rows.append({"seed": seed, "variant": variant, "example": got[variant],
                             "stage": stage, "equal": got[variant] == stage,
                             "example_seconds_both": round(example_s, 1),
                             "stage_seconds": round(run["seconds"], 1)})
                print(f"seed {seed} {variant:>15}: example {got[variant]}  stage {stage}  "
                      f"{'equal' if got[variant] == stage else 'DIFFERENT'}", flush=True)
    write_json(Path(args.out) / f"{args.name}.json", {"budget": budget, "rows": rows})


if __name__ == "__main__":
    main()
