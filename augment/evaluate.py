"""Downstream evaluation: does adding synthetic samples help a classifier?

The same small CNN, with the same budget and seed, is trained on each variant's training set,
the epoch with the best validation balanced accuracy is kept, and that model is scored once on
the untouched test split. A variant is "+"-joined parts: the data (``real``, ``synthetic``),
treatments of the training set (``oversample``: resample every class up to the largest;
``classic``: albumentations augmentation, redrawn every epoch), e.g. ``real+synthetic+classic``,
long-tail treatments of the loss or the prediction (``balanced_softmax``, ``logit_adjust``,
``drw``, ``posthoc``) and of the batch (``mixup``: :mod:`augment.mixing`). Those
come as a :class:`~augment.classifier.Treatment`, built once per variant by
:func:`augment.longtail.treatment`; without one a classifier trains on cross-entropy of unmixed
batches and predicts the arg max (:data:`~augment.classifier.PLAIN`). The classifier and its
fit: :mod:`augment.classifier`.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)

from .classic import candidates, check_policy, classic_augment, policy_for
from .classifier import PLAIN, Treatment, fit_classifier, predict_logits
from .config import OMEGAS, VARIANT_PARTS, EvaluateConfig, variant_parts, variant_weight
from .data import ImageSet, balanced_index
from .errors import DataError
from .longtail import treatment
from .runtime import resolve_device
from .sampling import draw_weights


def compose(variant: str, real: ImageSet, synthetic: tuple[np.ndarray, np.ndarray] | None, *,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training set of a variant's data parts, oversampled to balance if it says so:
    (images, labels, is_synthetic) with one flag per image."""
    parts = variant_parts(variant)
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
    parts = variant_parts(variant)
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
                     synthetic_weight: float | None = None, **fit_kwargs) -> dict:
    """Train on one variant, select on val, score on test. Returns metrics + predictions.

    ``classic`` is the albumentations policy (:mod:`augment.classic`) of the ``classic`` part
    (None: :func:`augment.classic.policy_for` the images' channels).
    A variant with loss or prediction parts needs their ``treatment``
    (:func:`augment.longtail.treatment`, built from the same ``synthetic_weight``); the others
    train with :data:`PLAIN`. ``synthetic_weight``: a synthetic image is drawn that many times as
    often as a real one; None = the variant's own (``synthetic*0.1``: 0.1; bare: 1).
    """
    treatment = _checked_treatment(variant, treatment)
    synthetic_weight = _weight(variant, synthetic_weight)
    images, labels, fake = compose(variant, splits["train"], synthetic, seed=seed)
    classes = splits["train"].classes
    transform = None
    if "classic" in variant_parts(variant):
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


def _weight(variant: str, given: float | None) -> float:
    """The synthetic weight a fit of ``variant`` draws with: ``given``, else the variant's own."""
    weight = variant_weight(variant) if given is None else given
    if weight == "auto":
        raise DataError(f"variant {variant!r} chooses its synthetic weight on val; pass the "
                        "chosen synthetic_weight= (augment.evaluate.run_grid does)")
    if weight != 1 and "oversample" in variant_parts(variant):
        raise DataError(f"variant {variant!r}: synthetic_weight {weight} with oversample "
                        "(which set is balanced is ambiguous); drop one")
    return weight


def settings_grid(variant: str, *, classic: str | None, channels: int) -> list[dict]:
    """The (synthetic_weight, classic) settings a run chooses among on val for ``variant``: the
    ω grid of :data:`~augment.config.OMEGAS` for a ``synthetic*auto`` part, the policies of
    :func:`augment.classic.candidates` when ``classic`` is ``auto`` and the variant has the
    classic part; one setting otherwise."""
    parts = set(variant_parts(variant))
    weight = variant_weight(variant)
    omegas = OMEGAS if weight == "auto" else (weight,)
    if classic == "auto" and "classic" in parts:
        policies = candidates(channels)
    else:
        policies = (policy_for(channels) if classic in (None, "auto") else classic,)
    return [{"synthetic_weight": w, "classic": p} for w in omegas for p in policies]


def pick_on_val(trials: list[tuple[str, dict]], results: list[dict]
                ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Per variant, the setting of its trials (in order) with the best val balanced accuracy
    (ties: the earlier) and that trial's result."""
    best: dict[str, tuple[dict, dict]] = {}
    for (variant, setting), result in zip(trials, results):
        if variant not in best or (result["val_balanced_accuracy"]
                                   > best[variant][1]["val_balanced_accuracy"]):
            best[variant] = (setting, result)
    return {v: s for v, (s, _) in best.items()}, {v: r for v, (_, r) in best.items()}


def run_grid(cfg: EvaluateConfig, splits: dict[str, ImageSet],
             synthetic: tuple[np.ndarray, np.ndarray] | None, *, seed: int,
             run: Callable[[Callable, list[dict]], list[dict]]) -> tuple[list[dict], dict]:
    """Every (variant, seed) fit of the evaluate stage, through ``run(fn, jobs)``: each variant's
    treatment built once from the class counts it trains on; where a setting is ``auto``, its
    candidates tried on the first seed and the best on val kept for every seed. Returns the
    runs (seed by seed, variants in order) and the choices ({variant: setting, ``tried``,
    ``seconds``})."""
    if cfg.classic not in (None, "auto"):
        check_policy(cfg.classic, key="evaluate.classic")
    train, fake_labels = splits["train"], None if synthetic is None else synthetic[1]
    steps = (common_steps(cfg.variants, train.labels, fake_labels, batch_size=cfg.batch_size)
             if cfg.equal_steps else None)
    grid = {v: settings_grid(v, classic=cfg.classic, channels=train.images.shape[1])
            for v in cfg.variants}

    def job(variant: str, setting: dict, i: int) -> dict:
        counts = variant_counts(variant, train.labels, fake_labels,
                                num_classes=len(train.classes),
                                synthetic_weight=setting["synthetic_weight"])
        return dict(variant=variant, splits=splits, synthetic=synthetic, seed=seed + i,
                    steps_per_epoch=steps, treatment=treatment(variant, counts, cfg),
                    **{**cfg.fit_kwargs(), **setting})

    trials = [(v, setting) for v in cfg.variants if len(grid[v]) > 1 for setting in grid[v]]
    tried = run(evaluate_variant, [job(v, setting, 0) for v, setting in trials])
    chosen, first = pick_on_val(trials, tried)
    settings = {v: chosen.get(v, grid[v][0]) for v in cfg.variants}
    pending = [(i, v) for i in range(cfg.seeds) for v in cfg.variants
               if not (i == 0 and v in chosen)]
    done = dict(zip(pending, run(evaluate_variant, [job(v, settings[v], i)
                                                     for i, v in pending])))
    runs = [done[i, v] if (i, v) in done else first[v]
            for i in range(cfg.seeds) for v in cfg.variants]
    seconds = {v: round(sum(r["seconds"] for (w, _), r in zip(trials, tried) if w == v), 2)
               for v in chosen}
    return runs, {v: {**chosen[v], "tried": len(grid[v]), "seconds": seconds[v]}
                  for v in chosen}


def _checked_treatment(variant: str, treatment: Treatment | None) -> Treatment:
    """``treatment``, or :data:`PLAIN` for a variant without loss, prediction or mixing parts."""
    parts = [p for p in variant_parts(variant)
             if VARIANT_PARTS.get(p) in ("loss", "prediction", "mixing")]
    if parts and treatment is None:
        raise DataError(f"variant {variant!r}: the part(s) {', '.join(parts)} change the loss, "
                        "the prediction or the batch; pass treatment=augment.longtail."
                        "treatment(variant, counts, cfg), as the evaluate stage does")
    return treatment or PLAIN
