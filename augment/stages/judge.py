"""The judge stage: fit the judge classifier on the real train split (selected on val); the
train stage scores checkpoints with it (domain FID) and synthesis can filter by it."""

from __future__ import annotations

from typing import Mapping

from .. import data as D
from ..config import stage_config
from ..io import log, write_json
from ..judge import save_judge, train_judge


def run(params: Mapping, *, data: str = "data/prepared", out: str = "models/judge.pt",
        metrics: str = "metrics/judge.json") -> dict:
    cfg, seed = stage_config(params, "judge"), params.get("seed", 0)
    splits = D.load_prepared(data, splits=("train", "val"))
    model, info = train_judge(splits["train"], splits["val"], seed=seed, **cfg.fit_kwargs())
    save_judge(out, model, classes=splits["train"].classes, width=cfg.width, info=info)
    write_json(metrics, info)
    accuracy, k = info["val_balanced_accuracy"], len(splits["train"].classes)
    log("judge", f"val balanced accuracy {accuracy:.4f} (epoch {info['epoch']})")
    if D.near_chance(accuracy, k):
        log("judge", f"WARNING: val balanced accuracy {accuracy:.3f} is near chance ({1 / k:.3f} "
                     f"for {k} classes): the train stage's FID, checkpoint choice and "
                     "quality guards rest on this judge and say little; raise judge.epochs, "
                     "add images, or check that the labels match the images")
    return info
