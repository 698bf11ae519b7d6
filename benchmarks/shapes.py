"""Fabricate a small RGB image-folder data set: one class per (shape, colour) pair, drawn at a
random position and scale on a noisy background. Used by the RGB benchmark and tests, so that
the folder source, 3-channel models and evaluation are exercised on learnable data.

    python benchmarks/shapes.py OUT_DIR [--per-class 100] [--size 32] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = {"red_square": ((220, 40, 40), "square"), "green_disc": ((40, 200, 60), "disc"),
           "blue_triangle": ((50, 80, 230), "triangle"), "yellow_disc": ((230, 210, 40), "disc")}


def draw(kind: str, colour, size: int, rng: np.random.Generator) -> Image.Image:
    noise = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    r = rng.uniform(0.2, 0.35) * size
    cx, cy = rng.uniform(r, size - r, 2)
    box = [cx - r, cy - r, cx + r, cy + r]
    pen = ImageDraw.Draw(image)
    if kind == "square":
        pen.rectangle(box, fill=colour)
    elif kind == "disc":
        pen.ellipse(box, fill=colour)
    else:
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return image


def fabricate_shapes(root: str | Path, *, per_class: int = 100, size: int = 32, seed: int = 0,
                     classes: dict = CLASSES) -> Path:
    """Write ``root/<class>/<i>.png`` and return ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for name, (colour, kind) in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(kind, colour, size, rng).save(root / name / f"{i:04d}.png")
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    print(fabricate_shapes(a.out, per_class=a.per_class, size=a.size, seed=a.seed))
