"""examples/train_loop.py: a user's plain PyTorch loop gets the evaluate stage's numbers."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from augment.config import TrainConfig
from augment.data import ImageSet, long_tail
from augment.evaluate import common_steps, evaluate_variant
from augment.synthesis import balance_counts, synthesize, write_synthetic
from augment.train import train_gan
from conftest import MNIST_ROOT, ROOT
from test_datasets import image_folder

CIFAR = MNIST_ROOT / "cifar10"
CLASSES = ("airplane", "automobile", "bird")


def photos(per_class: int) -> tuple[ImageSet, str]:
    """Real CIFAR-10 photos of three classes when ../shared has them, else made-up RGB images."""
    if (CIFAR / "train").is_dir():
        files = [sorted((CIFAR / "train" / c).glob("*.jpg"))[:per_class] for c in CLASSES]
        images = np.stack([np.array(Image.open(f).convert("RGB")).transpose(2, 0, 1)
                           for fs in files for f in fs])
        labels = np.repeat(np.arange(3), [len(fs) for fs in files])
        return ImageSet(images, labels.astype(np.int64), CLASSES), "cifar10"
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), per_class)
    base = rng.integers(0, 256, (3, 3, 32, 32))
    noise = rng.integers(-80, 80, (len(labels), 3, 32, 32))  # learnt in 8 epochs (±150 stayed at chance)
    images = np.clip(base[labels] + noise, 0, 255).astype(np.uint8)
    return ImageSet(images, labels.astype(np.int64), CLASSES), "made-up"


def test_the_example_loop_reports_the_evaluate_stages_numbers(tmp_path):
    data, _ = photos(100)
    order = np.random.default_rng(1).permutation(100)  # per class: 60 train, 20 val, 20 test
    pick = {s: np.concatenate([np.flatnonzero(data.labels == c)[order[a:b]] for c in range(3)])
            for s, (a, b) in {"train": (0, 60), "val": (60, 80), "test": (80, 100)}.items()}
    splits = {s: data.subset(np.sort(i)) for s, i in pick.items()}
    splits["train"] = long_tail(splits["train"], 4.0, seed=0)  # 60, 30, 15: something to fill
    # sorted by class, as ImageFolder lists its files: the same order on both sides
    splits = {s: d.subset(np.argsort(d.labels, kind="stable")) for s, d in splits.items()}
    for name, part in splits.items():
        image_folder(tmp_path / name, part.images, part.labels, part.classes)
    gan = train_gan(splits["train"], TrainConfig(epochs=1, width=8, batch_size=16), seed=0,
                    device="cpu")
    counts = balance_counts(splits["train"].labels, num_classes=3)
    fake = synthesize(gan.ema.module, counts, seed=0, device="cpu")
    write_synthetic(tmp_path / "synthetic", *fake, CLASSES)

    budget = {"epochs": 8, "width": 8, "batch_size": 16}  # enough to learn: not chance
    args = [f"--{k.replace('_', '-')}={v}" for k, v in budget.items()]
    out = subprocess.run([sys.executable, "examples/train_loop.py", "--synthetic-weight=0.5",
                          *[f"--{s}={tmp_path / s}" for s in ("train", "val", "test")],
                          f"--synthetic={tmp_path / 'synthetic'}", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = dict(re.findall(r"(\S+): test balanced accuracy ([0-9.]+)", out.stdout))
    arrays = (fake[0].numpy(), fake[1].numpy())
    steps = common_steps(["real", "real+synthetic"], splits["train"].labels, arrays[1],
                         batch_size=16)
    for variant in ("real", "real+synthetic"):
        stage = evaluate_variant(variant, splits, arrays, seed=0, synthetic_weight=0.5,
                                 steps_per_epoch=steps, device="cpu", **budget)
        assert printed[variant] == f"{stage['balanced_accuracy']:.4f}", (variant, out.stdout)
        assert stage["balanced_accuracy"] > 0.45, stage  # a classifier that learnt: 1/3 is chance


def test_the_example_stays_short_enough_to_read():
    lines = (ROOT / "examples" / "train_loop.py").read_text().splitlines()
    assert len(lines) <= 80, len(lines)


@pytest.mark.parametrize("bad", ["--synthetic-weight=1.5", "--synthetic-weight=0"])
def test_the_example_refuses_a_weight_outside_0_1(tmp_path, bad):
    splits = {s: photos(4)[0] for s in ("train", "val", "test")}
    for name, part in splits.items():
        image_folder(tmp_path / name, part.images, part.labels, part.classes)
    write_synthetic(tmp_path / "synthetic", *map(__import__("torch").as_tensor,
                                                 (part.images[:2], part.labels[:2])), CLASSES)
    out = subprocess.run([sys.executable, "examples/train_loop.py", bad,
                          *[f"--{s}={tmp_path / s}" for s in ("train", "val", "test")],
                          f"--synthetic={tmp_path / 'synthetic'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "synthetic_weight: got" in out.stderr
