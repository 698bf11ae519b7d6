"""Downstream evaluation: does adding synthetic samples help a classifier?

The same small CNN, with the same budget and seed, is trained on each variant's training set,
the epoch with the best validation balanced accuracy is kept, and that model is scored once on
the untouched test split. A variant is "+"-joined parts: the data (``real``, ``synthetic``),
treatments of the training set (``oversample``: resample every class up to the largest;
``classic``: albumentations augmentation, redrawn every epoch), e.g. ``real+synthetic+classic``,
long-tail treatments of the loss or the prediction (``balanced_softmax``, ``logit_adjust``,
``drw``, ``posthoc``) and of the batch (``mixup``, ``remix``: :mod:`augment.mixing`). Those
come as a :class:`Treatment`, built once per variant by :func:`augment.longtail.treatment`;
without one a classifier trains on cross-entropy of unmixed batches and predicts the arg max
(:data:`PLAIN`).

A fit touches no global random state (its own generators for the batch order, dropout and
augmentation), so fits may run concurrently in threads and still give the same numbers.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)
from torch import nn

from .classic import classic_augment, policy_for
from .config import VARIANT_PARTS, ClassifierConfig as Defaults, EvaluateConfig
from .data import ImageSet, balanced_index
from .errors import DataError
from .mixing import UNMIXED, Mix
from .runtime import progress, resolve_device, to_unit
from .sampling import MixedSampler, draw_weights

_INIT_LOCK = threading.Lock()  # weight init draws from torch's global RNG: one model at a time

# (logits, targets) -> scalar; targets: integer labels, or B×C soft targets after a mix
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Treatment:
    """How a variant's classifier learns and predicts, chosen once before training.

    ``loss(epoch)``: the loss of that epoch's steps (a function of logits and labels);
    ``select(logits, labels)``: on val, the score that picks the epoch and the prediction rule
    (a dict, e.g. ``{"tau": 0.5}``, added to the fit's info); ``predict(logits, info)``: labels;
    ``mix(images, labels, rng)``: a training batch and its targets (:mod:`augment.mixing`).
    """

    loss: Callable[[int], Loss]
    select: Callable[[torch.Tensor, np.ndarray], tuple[float, dict]]
    predict: Callable[[torch.Tensor, dict], np.ndarray]
    mix: Mix = UNMIXED


def cross_entropy_every_epoch(epoch: int) -> Loss:
    return F.cross_entropy


def argmax_labels(logits: torch.Tensor, info: dict | None = None) -> np.ndarray:
    return logits.argmax(1).numpy()


def argmax_score(logits: torch.Tensor, labels: np.ndarray) -> tuple[float, dict]:
    """Balanced accuracy of the arg max; no rule to choose."""
    return float(balanced_accuracy_score(labels, argmax_labels(logits))), {}


PLAIN = Treatment(loss=cross_entropy_every_epoch, select=argmax_score, predict=argmax_labels)


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


def seeded_classifier(*, channels: int, num_classes: int, width: int = Defaults.width,
                      seed: int = 0, device: str | torch.device = "cpu") -> SmallCNN:
    """A :class:`SmallCNN` on ``device`` whose initial weights and dropout masks follow ``seed``
    alone (the global RNG is seeded under a lock, so concurrent fits do not interleave)."""
    device = resolve_device(device)
    with _INIT_LOCK:
        torch.manual_seed(seed)
        model = SmallCNN(channels=channels, num_classes=num_classes, width=width)
    model.net[-2].generator = torch.Generator(device).manual_seed(seed)
    return model.to(device)


def compose(variant: str, real: ImageSet, synthetic: tuple[np.ndarray, np.ndarray] | None, *,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training set of a variant's data parts, oversampled to balance if it says so:
    (images, labels, is_synthetic) with one flag per image."""
    parts = variant.split("+")
    if "synthetic" in parts and synthetic is None:
        raise DataError(f"variant {variant!r} needs synthetic samples; none were given")
    if "synthetic" in parts and "real" not in parts and len(synthetic[1]) == 0:
        raise DataError(f"variant {variant!r} trains on synthetic samples only, but there are "
                        "none (every class already meets synthesize.target); raise "
                        "synthesize.multiple or target")
    chosen = [(*d, np.full(len(d[1]), name == "synthetic"))
              for name, d in (("real", (real.images, real.labels)), ("synthetic", synthetic))
              if name in parts]
    images, labels, fake = (np.concatenate([d[i] for d in chosen]) for i in (0, 1, 2))
    if "oversample" in parts:
        index = balanced_index(labels, seed=seed)
        images, labels, fake = images[index], labels[index], fake[index]
    return images, labels, fake


def variant_counts(variant: str, real_labels: np.ndarray, synthetic_labels: np.ndarray | None,
                   *, num_classes: int = 1, synthetic_weight: float = 1.0) -> np.ndarray:
    """Images per class that :func:`compose` gives ``variant``, from the labels alone; with a
    ``synthetic_weight``, the class mass the classifier draws (a synthetic image counts w)."""
    parts = variant.split("+")
    chosen = [(y, synthetic_weight if name == "synthetic" else 1.0)
              for name, y in (("real", real_labels), ("synthetic", synthetic_labels))
              if name in parts and y is not None]
    counts = sum((w * np.bincount(np.asarray(y).astype(int), minlength=num_classes)
                  for y, w in chosen), np.zeros(num_classes, dtype=np.int64))
    if synthetic_weight == 1:
        counts = counts.astype(np.int64)
    # oversample fills every present class to the largest (data.balanced_index)
    return np.where(counts > 0, counts.max(), 0) if "oversample" in parts else counts


def train_size(variant: str, real_labels: np.ndarray, synthetic_labels: np.ndarray | None
               ) -> int:
    """How many images :func:`compose` gives ``variant``, from the labels alone."""
    return int(variant_counts(variant, real_labels, synthetic_labels).sum())


def prior_ratio(counts: np.ndarray) -> float:
    """Largest over smallest class count, over the classes present: 1 = a uniform prior."""
    present = counts[counts > 0]
    return float(present.max() / present.min())


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
def predict_logits(model: nn.Module, images: np.ndarray, *, device: torch.device,
                   batch_size: int = 512) -> torch.Tensor:
    """The model's logits (N×classes, on the CPU) for uint8 images."""
    model.eval()
    x = to_unit(images, device)
    return torch.cat([model(b).cpu() for b in x.split(batch_size)])


def predict(model: nn.Module, images: np.ndarray, *, device: torch.device,
            batch_size: int = 512) -> np.ndarray:
    """Predicted labels (arg max) for uint8 images."""
    return argmax_labels(predict_logits(model, images, device=device, batch_size=batch_size))


def fit_classifier(images: np.ndarray, labels: np.ndarray, val: ImageSet, *, num_classes: int,
                   epochs: int = Defaults.epochs, batch_size: int = Defaults.batch_size,
                   lr: float = Defaults.lr, weight_decay: float = Defaults.weight_decay,
                   width: int = Defaults.width, seed: int = 0,
                   device: str | torch.device | None = None,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   steps_per_epoch: int | None = None,
                   treatment: Treatment = PLAIN,
                   is_synthetic: np.ndarray | None = None,
                   synthetic_weight: float = 1.0) -> tuple[nn.Module, dict]:
    """Train :class:`SmallCNN`; return the weights of the epoch with the best val balanced acc.

    ``transform`` (uint8 N×C×H×W → same) redraws every training image each time it is drawn.
    ``steps_per_epoch`` fixes the optimizer steps between two val checks (default: one pass
    over the set); a set smaller than that is passed over more than once per epoch, so sets of
    different sizes can be given the same number of updates. ``treatment`` gives each epoch's
    loss and the val score (with its prediction rule, e.g. post-hoc τ, returned in the info).
    ``is_synthetic`` (one flag per image) with ``synthetic_weight``: passes draw a synthetic
    image with that probability. The batches come from :class:`augment.sampling.MixedSampler`
    seeded with ``seed``: a user's loop with the same sampler sees the same images in the same
    order. A treatment's ``mix`` draws from its own generator, seeded from ``seed``.
    """
    device = resolve_device(device)
    model = seeded_classifier(channels=images.shape[1], num_classes=num_classes, width=width,
                              seed=seed, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = steps_per_epoch or max(1, len(labels) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    # With a transform, each epoch's drawn images are augmented (and converted) afresh.
    x = to_unit(images, device) if transform is None else None
    y = torch.as_tensor(labels, device=device)
    fake = np.zeros(len(labels), bool) if is_synthetic is None else is_synthetic
    sampler = MixedSampler(fake, synthetic_weight=synthetic_weight,
                           num_samples=steps * batch_size, seed=seed)
    mixing = np.random.default_rng((seed, 1))  # only a mixing treatment draws from it
    best = {"val_balanced_accuracy": -1.0, "epoch": 0}
    for epoch in progress(range(1, epochs + 1), desc="classifier", unit="epoch"):
        model.train()
        criterion = treatment.loss(epoch)
        drawn = sampler.epoch()  # (steps·batch,) indices
        xe = (x[drawn.to(device)] if transform is None
              else to_unit(transform(images[drawn.numpy()]), device))
        ye = y[drawn.to(device)]
        for xb, yb in zip(xe.split(batch_size), ye.split(batch_size)):
            xb, tb = treatment.mix(xb, yb, mixing)
            loss = criterion(model(xb), tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        score, rule = treatment.select(predict_logits(model, val.images, device=device),
                                       val.labels)
        if score > best["val_balanced_accuracy"]:
            best = {"val_balanced_accuracy": float(score), "epoch": epoch, **rule,
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
                     classic: str | None = EvaluateConfig.classic,
                     device: str | torch.device | None = None,
                     treatment: Treatment | None = None,
                     synthetic_weight: float = EvaluateConfig.synthetic_weight,
                     **fit_kwargs) -> dict:
    """Train on one variant, select on val, score on test. Returns metrics + predictions.

    ``classic`` is the albumentations policy (:mod:`augment.classic`) of the ``classic`` part
    (None: :func:`augment.classic.policy_for` the images' channels).
    A variant with loss or prediction parts needs their ``treatment``
    (:func:`augment.longtail.treatment`, built from the same ``synthetic_weight``); the others
    train with :data:`PLAIN`. ``synthetic_weight``: a synthetic image is drawn that many times as
    often as a real one.
    """
    treatment = _checked_treatment(variant, treatment)
    if synthetic_weight != 1 and {"synthetic", "oversample"} <= set(variant.split("+")):
        raise DataError(f"variant {variant!r}: synthetic_weight {synthetic_weight} with "
                        "oversample (which set is balanced is ambiguous); drop one")
    images, labels, fake = compose(variant, splits["train"], synthetic, seed=seed)
    classes = splits["train"].classes
    transform = None
    if "classic" in variant.split("+"):
        transform = classic_augment(classic or policy_for(images.shape[1]),
                                    image_size=images.shape[-1], seed=seed)
    start = time.perf_counter()
    model, selection = fit_classifier(images, labels, splits["val"], num_classes=len(classes),
                                      seed=seed, device=device, transform=transform,
                                      treatment=treatment, is_synthetic=fake,
                                      synthetic_weight=synthetic_weight, **fit_kwargs)
    logits = predict_logits(model, splits["test"].images, device=resolve_device(device))
    y_pred = treatment.predict(logits, selection)
    y_true = splits["test"].labels
    counts = np.bincount(labels, weights=draw_weights(fake, synthetic_weight),
                         minlength=len(classes))
    return {"variant": variant, "seed": seed, "n_train": int(len(labels)), **selection,
            "prior_ratio": prior_ratio(counts), "seconds": time.perf_counter() - start,
            **classification_metrics(y_true, y_pred, classes),
            "confusion": confusion_matrix(y_true, y_pred, labels=range(len(classes))).tolist(),
            "y_true": y_true.tolist(), "y_pred": y_pred.tolist()}


def _checked_treatment(variant: str, treatment: Treatment | None) -> Treatment:
    """``treatment``, or :data:`PLAIN` for a variant without loss, prediction or mixing parts."""
    parts = [p for p in variant.split("+")
             if VARIANT_PARTS.get(p) in ("loss", "prediction", "mixing")]
    if parts and treatment is None:
        raise DataError(f"variant {variant!r}: the part(s) {', '.join(parts)} change the loss, "
                        "the prediction or the batch; pass treatment=augment.longtail."
                        "treatment(variant, counts, cfg), as the evaluate stage does")
    return treatment or PLAIN
