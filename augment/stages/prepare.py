"""The prepare stage: load the source, conform size and channels, split train/val/test, apply
the long tail to train."""

from __future__ import annotations

from typing import Mapping

from .. import data as D
from ..config import PrepareConfig, stage_config
from ..io import log, write_json
from ..sources import load_source


def run(params: Mapping, *, out: str = "data/prepared",
        metrics: str = "metrics/prepare.json") -> dict:
    """A test or val split the source gives (a torchvision set's test split; an image folder's
    ``test/``, ``val/``) is used whole, conformed like the pool; a split it does not give is
    carved from the pool (``test_fraction``, then ``val_fraction``). ``max_per_class`` caps
    the pool only, and the long tail thins train only.
    """
    cfg, seed = stage_config(params, "prepare"), params.get("seed", 0)
    loaded = load_source(
        cfg.source, root=cfg.root, download=cfg.download, manifest=cfg.manifest,
        path_column=cfg.path_column, label_column=cfg.label_column,
        image_size=cfg.image_size, channels=cfg.channels, classes=cfg.classes)
    _warn_loaded(loaded.skipped, loaded.stats, image_size=cfg.image_size, out=out)
    pool = D.conform(loaded.pool, image_size=cfg.image_size, channels=cfg.channels)
    D.check_classes(pool)
    if cfg.max_per_class is not None:
        pool = D.cap_per_class(pool, cfg.max_per_class, seed=seed)
    whole = pool.counts()
    pool, test = given_or_carved(loaded.test, pool, cfg.test_fraction, cfg, seed=seed,
                                 what="test split")
    train, val = given_or_carved(loaded.val, pool, cfg.val_fraction, cfg, seed=seed,
                                 what="val split", before=whole if loaded.test is None else None)
    train = D.long_tail(train, cfg.imbalance_ratio, seed=seed)
    splits = {"train": train, "val": val, "test": test}
    origin = {name: "carved" if part is None else "given"
              for name, part in (("val", loaded.val), ("test", loaded.test))}
    _warn_thin(splits)
    D.save_prepared(out, splits, skipped=loaded.skipped)
    counts = train.counts()
    summary = {"skipped_files": len(loaded.skipped),
               "upscaled_images": int(loaded.stats.get("upscaled", 0)),
               "classes": len(train.classes), "image_shape": list(train.images.shape[1:]),
               **{f"n_{name}": int(len(part.labels)) for name, part in splits.items()},
               "splits": origin,
               "train_imbalance": float(counts.max() / counts.min()),
               "train_counts": {c: int(n) for c, n in zip(train.classes, counts)}}
    write_json(metrics, summary)
    log("prepare", f"{cfg.source}: train {len(train.labels)} / val {len(val.labels)} "
                   f"({origin['val']}) / test {len(test.labels)} ({origin['test']}), "
                   f"image {summary['image_shape']}")
    return summary


def given_or_carved(given: D.ImageSet | None, pool: D.ImageSet, fraction: float,
                    cfg: PrepareConfig, *, seed: int, what: str,
                    before=None) -> tuple[D.ImageSet, D.ImageSet]:
    """(the pool left, a split): the source's own split conformed like the pool, or
    ``fraction`` of the pool carved out, stratified by class (``what``, ``before``: for the
    errors, as :func:`augment.data.stratified_split`)."""
    if given is None:
        return D.stratified_split(pool, fraction, seed=seed, what=what, before=before)
    return pool, D.conform(given, image_size=cfg.image_size, channels=cfg.channels)


def _warn_loaded(skipped: list, stats: dict, *, image_size: int | None, out: str) -> None:
    if skipped:
        log("prepare", f"WARNING: skipped {len(skipped)} file(s) (unreadable or not images); "
                       f"listed in {out}/skipped.csv")
    if stats.get("upscaled"):
        log("prepare", f"WARNING: {stats['upscaled']} image(s) smaller than image_size "
                       f"{image_size} were upscaled")


# Held-out images of a class below which its recall moves in steps of 1/4 or coarser.
FEW_HELD_OUT = 5


def _warn_thin(splits: dict) -> None:
    """Warn of a val or test split with under :data:`FEW_HELD_OUT` images of a class: its
    recall, and with it the balanced accuracy, the reported differences and val's choices, rest
    on those few images."""
    for name in ("val", "test"):
        counts = splits[name].counts()
        thin = [f"{c} ({n})" for c, n in zip(splits[name].classes, counts) if n < FEW_HELD_OUT]
        if thin:
            log("prepare", f"WARNING: the {name} split holds under {FEW_HELD_OUT} images of "
                           f"{', '.join(thin)}: one image moves such a class's recall by 1/n, so "
                           "the scores measured there are noisy; add images of those classes "
                           f"or give the {name} split a larger share (prepare.{name}_fraction, "
                           f"or more images in its {name}/ folder)")
