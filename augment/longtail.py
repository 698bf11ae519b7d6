"""Long-tail treatments of the evaluate classifier: the variant parts that change its loss or its
prediction, all built from the class prior π — the class frequencies of *that variant's*
training set, synthetic images counted W times for a ``synthetic*W`` part (after ``oversample``
or a full synthetic fill at weight 1 π is uniform and the prior-based parts change nothing).

- ``balanced_softmax`` (Ren et al. 2020): cross-entropy on logits + log π.
- ``logit_adjust`` (Menon et al. 2021, logit-adjusted loss): cross-entropy on logits + τ·log π,
  τ = ``evaluate.tau``; at τ = 1 it is ``balanced_softmax``.
- ``drw`` (deferred re-weighting, Cao et al. 2019): plain cross-entropy, then, from epoch
  ⌊drw_start·epochs⌋ + 1 on, cross-entropy weighted per class by the class-balanced weights of
  Cui et al. 2019, w_c ∝ (1 − β) / (1 − β^n_c), β = ``evaluate.drw_beta`` (the weighted mean
  of ``F.cross_entropy(weight=…)``, as Cao et al.'s code).
- ``posthoc`` (post-hoc logit adjustment, Menon et al. 2021): train plainly, predict
  arg max(logits − τ·log π); τ is chosen from ``evaluate.posthoc_taus`` on val balanced
  accuracy, jointly with the epoch (ties: the smallest τ).

:func:`treatment` picks the functions once per variant (registries :data:`LOSSES`,
:data:`RULES`, and :data:`augment.mixing.MIXES` for ``mixup``); a training step only
calls the loss and the mix it was given. Every loss takes integer labels or, after a mix, soft
targets.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score

from .config import EvaluateConfig, variant_parts
from .errors import DataError
from .classifier import PLAIN, UNMIXED, Loss, Treatment
from .mixing import MIXES


def log_prior(counts: np.ndarray) -> np.ndarray:
    """log π_c = log(n_c / Σ n)."""
    counts = np.asarray(counts, dtype=float)
    return np.log(counts / counts.sum())


def shifted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *,
                          shift: np.ndarray) -> torch.Tensor:
    """Cross-entropy on ``logits + shift`` (shift per class)."""
    return F.cross_entropy(logits + torch.as_tensor(shift, dtype=logits.dtype,
                                                    device=logits.device), labels)


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *,
                           weights: np.ndarray) -> torch.Tensor:
    """Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}: ``F.cross_entropy`` with class weights. Soft targets t
    (B×C): −Σ_ic w_c t_ic log p_ic / Σ_ic w_c t_ic, the same weighted mean."""
    w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
    if labels.dim() == 1:
        return F.cross_entropy(logits, labels, weight=w)
    mass = labels * w
    return -(mass * F.log_softmax(logits, 1)).sum() / mass.sum()


def effective_number_weights(counts: np.ndarray, beta: float) -> np.ndarray:
    """Class-balanced weights (Cui et al. 2019): (1 − β) / (1 − β^n_c), scaled to sum to C."""
    weights = (1 - beta) / (1 - beta ** np.asarray(counts, dtype=float))
    return weights / weights.sum() * len(weights)


def drw_first_epoch(epochs: int, start: float) -> int:
    """The first epoch (1-based) that ``drw`` weights: ⌊start·epochs⌋ + 1."""
    return math.floor(start * epochs) + 1


def _every_epoch(loss: Loss, epoch: int) -> Loss:
    return loss


def _deferred(epoch: int, *, first: int, weighted: Loss) -> Loss:
    return weighted if epoch >= first else F.cross_entropy


def balanced_softmax(counts: np.ndarray, cfg: EvaluateConfig):
    """epoch → cross-entropy on logits + log π."""
    return partial(_every_epoch, partial(shifted_cross_entropy, shift=log_prior(counts)))


def logit_adjust(counts: np.ndarray, cfg: EvaluateConfig):
    """epoch → cross-entropy on logits + τ·log π."""
    return partial(_every_epoch, partial(shifted_cross_entropy,
                                         shift=cfg.tau * log_prior(counts)))


def drw(counts: np.ndarray, cfg: EvaluateConfig):
    """epoch → plain cross-entropy, class-balanced weighted from :func:`drw_first_epoch` on."""
    weighted = partial(weighted_cross_entropy,
                       weights=effective_number_weights(counts, cfg.drw_beta))
    return partial(_deferred, first=drw_first_epoch(cfg.epochs, cfg.drw_start),
                   weighted=weighted)


def adjusted_labels(logits: torch.Tensor, info: dict, *, log_prior: np.ndarray) -> np.ndarray:
    """arg max(logits − τ·log π), τ = ``info["tau"]``."""
    shift = torch.as_tensor(info["tau"] * log_prior, dtype=logits.dtype)
    return (logits - shift).argmax(1).numpy()


def best_tau(logits: torch.Tensor, labels: np.ndarray, *, log_prior: np.ndarray,
             taus: tuple[float, ...]) -> tuple[float, dict]:
    """The τ of ``taus`` (ascending) with the best balanced accuracy; ties: the smallest."""
    scores = [balanced_accuracy_score(labels, adjusted_labels(logits, {"tau": t},
                                                              log_prior=log_prior))
              for t in taus]
    best = int(np.argmax(scores))  # the first maximum
    return float(scores[best]), {"tau": float(taus[best])}


def posthoc(counts: np.ndarray, cfg: EvaluateConfig):
    """(select, predict) of post-hoc logit adjustment."""
    prior = log_prior(counts)
    return (partial(best_tau, log_prior=prior, taus=tuple(sorted(cfg.posthoc_taus))),
            partial(adjusted_labels, log_prior=prior))


LOSSES = {"balanced_softmax": balanced_softmax, "logit_adjust": logit_adjust, "drw": drw}
RULES = {"posthoc": posthoc}


def treatment(variant: str, counts: np.ndarray, cfg: EvaluateConfig) -> Treatment:
    """The :class:`~augment.classifier.Treatment` of ``variant`` whose training set has ``counts``
    images per class (:func:`augment.evaluate.variant_counts`); :data:`PLAIN` parts otherwise."""
    parts = variant_parts(variant)
    losses = [LOSSES[p] for p in parts if p in LOSSES]
    rules = [RULES[p] for p in parts if p in RULES]
    mixes = [MIXES[p] for p in parts if p in MIXES]
    if (losses or rules) and not np.all(counts > 0):
        empty = [str(c) for c in np.flatnonzero(counts == 0)]
        raise DataError(f"evaluate.variants: {variant!r} has no training images of class "
                        f"index(es) {', '.join(empty)}, so its prior is 0 there; drop its "
                        "prior-based part or give every class images (add real, or "
                        "synthesize.minority_only: false)")
    loss = losses[0](counts, cfg) if losses else PLAIN.loss  # config allows one loss part
    select, predict = rules[0](counts, cfg) if rules else (PLAIN.select, PLAIN.predict)
    mix = mixes[0](counts, cfg) if mixes else UNMIXED  # config allows one mixing part
    return Treatment(loss=loss, select=select, predict=predict, mix=mix)
