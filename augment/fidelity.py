"""Generative-quality metrics in the judge's feature space (no download, any domain).

- ``fid``: Fréchet distance between Gaussians fitted to judge features of real and synthetic
  images (Heusel et al. 2017, with the domain's own classifier in place of Inception).
- ``fid_per_class``: the same within each class (conditional fidelity; noisy for tiny classes).
- ``diversity``: per class, mean pairwise feature distance of synthetic over real samples;
  1 ≈ as varied as the data, ≪ 1 = mode collapse.
- ``judge_accuracy``: share of samples the judge classifies as their label ("GAN-test",
  Shmelkov et al. 2018): does the label condition the image?
"""

from __future__ import annotations

import numpy as np
from torch import nn

from .data import ImageSet
from .judge import judge_outputs


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(ΣaΣb)^½) for feature sets a: N×D, b: M×D (N, M ≥ 2).

    Tr((ΣaΣb)^½) is computed as Σ √λ of the symmetric PSD matrix Σa^½ Σb Σa^½ (same
    eigenvalues), which stays exact and real when a small class makes Σ singular.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * trace_covmean)


def mean_pairwise_distance(f: np.ndarray, max_n: int = 500) -> float:
    """Mean Euclidean distance between distinct rows of ``f`` (first ``max_n`` rows)."""
    f = f[:max_n]
    d = np.sqrt(np.maximum(((f[:, None] - f[None]) ** 2).sum(-1), 0))
    return float(d.sum() / max(len(f) * (len(f) - 1), 1))


def fidelity_report(judge: nn.Module, real: ImageSet, fake_images: np.ndarray,
                    fake_labels: np.ndarray) -> dict:
    """FID, per-class FID, per-class diversity and judge accuracy of a synthetic set vs ``real``.

    Compare like with like: draw ``fake_labels`` with ``real``'s class proportions (e.g. one
    sample per real label) so that the overall FID does not measure a class-mix difference.
    """
    real_f, _ = judge_outputs(judge, real.images)
    fake_f, fake_p = judge_outputs(judge, fake_images)
    fake_labels = np.asarray(fake_labels)
    per_fid, diversity = {}, {}
    for c, name in enumerate(real.classes):
        r, f = real_f[real.labels == c], fake_f[fake_labels == c]
        if len(r) >= 2 and len(f) >= 2:
            per_fid[name] = round(frechet_distance(r, f), 4)
            diversity[name] = round(mean_pairwise_distance(f) / max(mean_pairwise_distance(r),
                                                                    1e-12), 4)
    return {"fid": round(frechet_distance(real_f, fake_f), 4),
            "fid_per_class": per_fid, "fid_class_mean": _mean(per_fid),
            "diversity": diversity, "diversity_min": min(diversity.values(), default=None),
            # under 2 real or drawn images: no per-class FID, diversity or min_diversity guard
            "not_measured": [name for name in real.classes if name not in per_fid],
            "judge_accuracy": round(float((fake_p.argmax(1) == fake_labels).mean()), 4),
            "judge_balanced_accuracy": _balanced(fake_p.argmax(1), fake_labels)}


def _balanced(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes drawn of the share labelled as intended (sklearn's
    balanced_accuracy_score, without its import in the train stage): the judge's val score is
    balanced accuracy, and samples come in the train split's class proportions."""
    hits = [(predicted[labels == c] == c).mean() for c in np.unique(labels)]
    return round(float(np.mean(hits)), 4) if hits else 0.0


def _mean(values: dict) -> float | None:
    return round(float(np.mean(list(values.values()))), 4) if values else None
