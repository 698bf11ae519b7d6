"""Downstream evaluation: does adding synthetic samples help a classifier?

The same small CNN, with the same budget and seed, is trained on each variant's training set,
the epoch with the best validation balanced accuracy is kept, and that model is scored once on
the untouched test split. A variant is "+"-joined parts: the data (``real``, ``synthetic``) and
treatments of the training set (``oversample``: resample every class up to the largest;
``classic``: albumentations augmentation, redrawn every epoch), e.g. ``real+synthetic+classic``.

A fit touches no global random state (its own generators for the batch order, dropout and
augmentation), so fits may run concurrently in threads and still give the same numbers.
"""

from __future__ import annotations

import copy
import threading
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)
from torch import nn

from .classic import classic_augment
from .config import ClassifierConfig as Defaults, EvaluateConfig
from .data import ImageSet, balanced_index
from .errors import DataError
from .runtime import progress, resolve_device, to_unit

_INIT_LOCK = threading.Lock()  # weight init draws from torch's global RNG: one model at a time


class SeededDropout(nn.Module):
    """Dropout drawing its mask from ``self.generator`` (global RNG when None)."""

    def __init__(self, p: float):
        super().__init__()
        self.p, self.generator = p, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1 - self.p)


class SmallCNN(nn.Module):
    """conv-conv-pool-conv-conv-global-pool classifier; works for any size ≥ 8 px."""

    def __init__(self, *, channels: int, num_classes: int, width: int = Defaults.width):
        super().__init__()

        def block(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]

        self.net = nn.Sequential(*block(channels, width), *block(width, width), nn.MaxPool2d(2),
                                 *block(width, 2 * width), *block(2 * width, 2 * width),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), SeededDropout(0.2),
                                 nn.Linear(2 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations B×2·width (after global pooling): the judge's feature space."""
        return self.net[:-2](x)


def compose(variant: str, real: ImageSet, synthetic: tuple[np.ndarray, np.ndarray] | None, *,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The training set of a variant's data parts, oversampled to balance if it says so."""
    parts = variant.split("+")
    if "synthetic" in parts and synthetic is None:
        raise DataError(f"variant {variant!r} needs synthetic samples; none were given")
    if "synthetic" in parts and "real" not in parts and len(synthetic[1]) == 0:
        raise DataError(f"variant {variant!r} trains on synthetic samples only, but there are "
                        "none (every class already meets synthesize.target); raise "
                        "synthesize.multiple or target")
    chosen = [d for name, d in (("real", (real.images, real.labels)), ("synthetic", synthetic))
              if name in parts]
    images, labels = (np.concatenate([d[i] for d in chosen]) for i in (0, 1))
    if "oversample" in parts:
        index = balanced_index(labels, seed=seed)
        images, labels = images[index], labels[index]
    return images, labels


def epoch_order(n: int, draws: int, generator: torch.Generator) -> torch.Tensor:
    """``draws`` indices into a set of ``n``: whole random permutations, one after another.

    ``draws`` ≤ n is one pass (the tail of the permutation is dropped, as a partial batch
    would be); more than n passes over the set again, every image once per pass.
    """
    passes = -(-draws // n)  # ceil
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(passes)])[:draws]


def train_size(variant: str, real_labels: np.ndarray, synthetic_labels: np.ndarray | None
               ) -> int:
    """How many images :func:`compose` gives ``variant``, from the labels alone."""
    parts = variant.split("+")
    chosen = [y for name, y in (("real", real_labels), ("synthetic", synthetic_labels))
              if name in parts and y is not None]
    counts = np.bincount(np.concatenate(chosen), minlength=1)
    # oversample fills every present class to the largest (data.balanced_index)
    return int((counts > 0).sum() * counts.max() if "oversample" in parts else counts.sum())


def common_steps(variants: Sequence[str], real_labels: np.ndarray,
                 synthetic_labels: np.ndarray | None, *, batch_size: int) -> int:
    """Steps per epoch that give every variant the same updates: one pass over the largest set.

    Without it a variant's budget grows with its set, and ``real`` on a long tail, the smallest
    set, is compared undertrained (digits at imbalance 100, 5 seeds: balanced accuracy 0.52 on
    its own set's steps, 0.77 on the oversampled set's; benchmarks/RESULTS.md).
    """
    largest = max(train_size(v, real_labels, synthetic_labels) for v in variants)
    return max(1, largest // batch_size)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, *, device: torch.device,
            batch_size: int = 512) -> np.ndarray:
    """Predicted labels for uint8 images."""
    model.eval()
    x = to_unit(images, device)
    return torch.cat([model(b).argmax(1).cpu() for b in x.split(batch_size)]).numpy()


def fit_classifier(images: np.ndarray, labels: np.ndarray, val: ImageSet, *, num_classes: int,
                   epochs: int = Defaults.epochs, batch_size: int = Defaults.batch_size,
                   lr: float = Defaults.lr, weight_decay: float = Defaults.weight_decay,
                   width: int = Defaults.width, seed: int = 0,
                   device: str | torch.device | None = None,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   steps_per_epoch: int | None = None) -> tuple[nn.Module, dict]:
    """Train :class:`SmallCNN`; return the weights of the epoch with the best val balanced acc.

    ``transform`` (uint8 N×C×H×W → same) redraws every training image each time it is drawn.
    ``steps_per_epoch`` fixes the optimizer steps between two val checks (default: one pass
    over the set); a set smaller than that is passed over more than once per epoch, so sets of
    different sizes can be given the same number of updates.
    """
    device = resolve_device(device)
    with _INIT_LOCK:
        torch.manual_seed(seed)
        model = SmallCNN(channels=images.shape[1], num_classes=num_classes, width=width)
    model.net[-2].generator = torch.Generator(device).manual_seed(seed)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = steps_per_epoch or max(1, len(labels) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    # With a transform, each epoch's drawn images are augmented (and converted) afresh.
    x = to_unit(images, device) if transform is None else None
    y = torch.as_tensor(labels, device=device)
    order = torch.Generator().manual_seed(seed)
    best = {"val_balanced_accuracy": -1.0, "epoch": 0}
    for epoch in progress(range(1, epochs + 1), desc="classifier", unit="epoch"):
        model.train()
        drawn = epoch_order(len(y), steps * batch_size, order)  # (steps·batch,) indices
        xe = (x[drawn.to(device)] if transform is None
              else to_unit(transform(images[drawn.numpy()]), device))
        ye = y[drawn.to(device)]
        for xb, yb in zip(xe.split(batch_size), ye.split(batch_size)):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        score = balanced_accuracy_score(val.labels, predict(model, val.images, device=device))
        if score > best["val_balanced_accuracy"]:
            best = {"val_balanced_accuracy": float(score), "epoch": epoch,
                    "state": copy.deepcopy(model.state_dict())}
    model.load_state_dict(best.pop("state"))
    return model.eval(), {**best, "steps_per_epoch": steps}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]
                           ) -> dict:
    """Accuracy, balanced accuracy, macro-F1 and per-class recall (sklearn)."""
    labels = list(range(len(classes)))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                       zero_division=0)),
            "per_class_recall": {c: float(r) for c, r in zip(classes, recall)}}


def evaluate_variant(variant: str, splits: dict[str, ImageSet],
                     synthetic: tuple[np.ndarray, np.ndarray] | None, *, seed: int = 0,
                     classic: str = EvaluateConfig.classic,
                     device: str | torch.device | None = None, **fit_kwargs) -> dict:
    """Train on one variant, select on val, score on test. Returns metrics + predictions.

    ``classic`` is the albumentations policy (:mod:`augment.classic`) of the ``classic`` part.
    """
    images, labels = compose(variant, splits["train"], synthetic, seed=seed)
    classes = splits["train"].classes
    transform = None
    if "classic" in variant.split("+"):
        transform = classic_augment(classic, image_size=images.shape[-1], seed=seed)
    model, selection = fit_classifier(images, labels, splits["val"], num_classes=len(classes),
                                      seed=seed, device=device, transform=transform,
                                      **fit_kwargs)
    y_pred = predict(model, splits["test"].images, device=resolve_device(device))
    y_true = splits["test"].labels
    return {"variant": variant, "seed": seed, "n_train": int(len(labels)), **selection,
            **classification_metrics(y_true, y_pred, classes),
            "confusion": confusion_matrix(y_true, y_pred, labels=range(len(classes))).tolist(),
            "y_true": y_true.tolist(), "y_pred": y_pred.tolist()}
