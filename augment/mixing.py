"""The mixing part of the evaluate classifier, ``mixup`` (Zhang et al. 2018): each training batch
is blended with a shuffled copy of itself, x̃ = λ·x_i + (1 − λ)·x_j, and learnt against the soft
targets λ·e_{y_i} + (1 − λ)·e_{y_j} (a B×C matrix, rows summing to 1); λ ~ Beta(α, α) once per
batch, α = ``evaluate.mixup_alpha``. (Remix, its rebalanced form, was measured to add nothing on
a long tail and removed: benchmarks/RESULTS.md.)

:data:`augment.classifier.UNMIXED` leaves a batch and its integer labels as they are; the training step calls
whichever ``mix`` its treatment was given (:func:`augment.longtail.treatment`).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from .classifier import Mix
from .config import EvaluateConfig


def blend(x: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """λ·x + (1 − λ)·x[perm]."""
    return lam * x + (1 - lam) * x[perm]


def soft_targets(y: torch.Tensor, perm: torch.Tensor, weight: torch.Tensor, num_classes: int
                 ) -> torch.Tensor:
    """weight_i·e_{y_i} + (1 − weight_i)·e_{y_perm(i)}, one row per image."""
    w = weight.to(device=y.device, dtype=torch.float32).reshape(-1, 1)
    return w * F.one_hot(y, num_classes) + (1 - w) * F.one_hot(y[perm], num_classes)


def _draw(n: int, rng: np.random.Generator, alpha: float) -> tuple[torch.Tensor, float]:
    """A permutation of the batch and λ ~ Beta(α, α)."""
    return torch.as_tensor(rng.permutation(n)), float(rng.beta(alpha, alpha))


def mixup_batch(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, *, alpha: float,
                num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm, lam = _draw(len(y), rng, alpha)
    perm = perm.to(y.device)
    return blend(x, perm, lam), soft_targets(y, perm, torch.full((len(y),), lam), num_classes)


def mixup(counts: np.ndarray, cfg: EvaluateConfig) -> Mix:
    return partial(mixup_batch, alpha=cfg.mixup_alpha, num_classes=len(counts))


MIXES = {"mixup": mixup}
