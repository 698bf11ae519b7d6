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
    log("judge", f"val balanced accuracy {info['val_balanced_accuracy']:.4f} "
                 f"(epoch {info['epoch']})")
    return info
