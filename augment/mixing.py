"""Mixing parts of the evaluate classifier: each training batch is blended with a shuffled copy
of itself and learnt against soft targets (a B×C matrix of class weights, rows summing to 1).

- ``mixup`` (Zhang et al. 2018): x̃ = λ·x_i + (1 − λ)·x_j, target λ·e_{y_i} + (1 − λ)·e_{y_j},
  λ ~ Beta(α, α) once per batch, α = ``evaluate.mixup_alpha``.
- ``remix`` (Chou et al. 2020, *Remix: rebalanced mixup*): the images mix as in mixup, but the
  label leans to the minority class of the pair: with n the class counts of the variant's
  training set, the weight of y_i is 0 when n_{y_i}/n_{y_j} ≥ κ and λ < τ, 1 when
  n_{y_i}/n_{y_j} ≤ 1/κ and 1 − λ < τ, λ otherwise (κ = ``evaluate.remix_kappa``,
  τ = ``evaluate.remix_tau``). On a balanced set (``oversample``, a full synthetic fill) it is
  mixup.

:data:`UNMIXED` leaves a batch and its integer labels as they are; the training step calls
whichever ``mix`` its treatment was given (:func:`augment.longtail.treatment`).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import EvaluateConfig

# (images, labels, rng) -> (images, targets): integer labels or B×C soft targets
Mix = Callable[[torch.Tensor, torch.Tensor, np.random.Generator],
               tuple[torch.Tensor, torch.Tensor]]


def unmixed(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    return x, y


UNMIXED: Mix = unmixed


def blend(x: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """λ·x + (1 − λ)·x[perm]."""
    return lam * x + (1 - lam) * x[perm]


def soft_targets(y: torch.Tensor, perm: torch.Tensor, weight: torch.Tensor, num_classes: int
                 ) -> torch.Tensor:
    """weight_i·e_{y_i} + (1 − weight_i)·e_{y_perm(i)}, one row per image."""
    w = weight.to(device=y.device, dtype=torch.float32).reshape(-1, 1)
    return w * F.one_hot(y, num_classes) + (1 - w) * F.one_hot(y[perm], num_classes)


def remix_weight(lam: float, n_i: torch.Tensor, n_j: torch.Tensor, *, kappa: float, tau: float
                 ) -> torch.Tensor:
    """Remix's label weight of y_i per pair (module docstring), from the pair's class counts."""
    ratio = n_i / n_j
    weight = torch.full(ratio.shape, float(lam), device=ratio.device)
    weight[(ratio >= kappa) & (lam < tau)] = 0.0
    weight[(ratio <= 1 / kappa) & (1 - lam < tau)] = 1.0
    return weight


def _draw(n: int, rng: np.random.Generator, alpha: float) -> tuple[torch.Tensor, float]:
    """A permutation of the batch and λ ~ Beta(α, α)."""
    return torch.as_tensor(rng.permutation(n)), float(rng.beta(alpha, alpha))


def mixup_batch(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, *, alpha: float,
                num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm, lam = _draw(len(y), rng, alpha)
    perm = perm.to(y.device)
    return blend(x, perm, lam), soft_targets(y, perm, torch.full((len(y),), lam), num_classes)


def remix_batch(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, *, alpha: float,
                counts: torch.Tensor, kappa: float, tau: float, num_classes: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    perm, lam = _draw(len(y), rng, alpha)
    perm, counts = perm.to(y.device), counts.to(y.device)
    weight = remix_weight(lam, counts[y], counts[y[perm]], kappa=kappa, tau=tau)
    return blend(x, perm, lam), soft_targets(y, perm, weight, num_classes)


def mixup(counts: np.ndarray, cfg: EvaluateConfig) -> Mix:
    return partial(mixup_batch, alpha=cfg.mixup_alpha, num_classes=len(counts))


def remix(counts: np.ndarray, cfg: EvaluateConfig) -> Mix:
    return partial(remix_batch, alpha=cfg.mixup_alpha,
                   counts=torch.as_tensor(np.asarray(counts, dtype=float)),
                   kappa=cfg.remix_kappa, tau=cfg.remix_tau, num_classes=len(counts))


MIXES = {"mixup": mixup, "remix": remix}
