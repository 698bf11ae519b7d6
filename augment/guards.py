"""Quality guards on GAN checkpoints, and which checkpoint to keep.

Every checkpoint is scored by the judge (:mod:`augment.fidelity`). It *passes* when

- the judge labels its samples as intended at least ``min_judge_ratio`` times as often as it
  labels real val images, both as balanced accuracy (samples come in the train split's class
  proportions): a diverged, chance-level or class-blind generator sits far below (on 10
  classes, chance is 0.1), and
- every class's sample diversity (mean pairwise feature distance of its samples over that of
  its real images: ≈ 1 healthy) is at least ``min_diversity``: a class collapsed onto one
  image scores ≈ 0.

The checkpoint kept for synthesis is the best by :func:`rank`: one that passes before one that
does not, then the lowest domain FID (Fréchet distance in the judge's feature space).
"""

from __future__ import annotations


def check(report: dict, *, judge_val_accuracy: float, min_judge_ratio: float,
          min_diversity: float) -> dict:
    """``{"passed": bool, "judge_ratio": float, "reasons": [str]}`` for one checkpoint's report."""
    accuracy = report["judge_balanced_accuracy"]
    ratio = accuracy / max(judge_val_accuracy, 1e-12)
    reasons = []
    if ratio < min_judge_ratio:
        reasons.append(f"the judge labels {accuracy:.3f} of the samples as intended (balanced "
                       f"over classes), {ratio:.2f} of its val balanced accuracy "
                       f"{judge_val_accuracy:.3f} (train.min_judge_ratio: {min_judge_ratio})")
    low = {c: d for c, d in (report.get("diversity") or {}).items()
           if d is not None and d < min_diversity}
    if low:
        worst = sorted(low.items(), key=lambda kv: kv[1])
        listed = ", ".join(f"{c} {d:.3f}" for c, d in worst[:5]) + (
            f" and {len(worst) - 5} more" if len(worst) > 5 else "")
        reasons.append(f"diversity below train.min_diversity {min_diversity} in {listed}")
    return {"passed": not reasons, "judge_ratio": round(ratio, 4), "reasons": reasons}


def rank(entry: dict) -> tuple:
    """Sort key of a kept checkpoint ``{"guards", "quality", ...}``: higher is better."""
    return entry["guards"]["passed"], -entry["quality"]["fid"]
