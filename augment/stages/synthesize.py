"""The synthesize stage: fill every class of the train split up to the target with samples of
the generator the checkpoint keeps (the best by the quality guards; one that failed them only
with ``synthesize.accept_failed_gan``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import data as D
from ..checkpoint import kept_generator, load_checkpoint
from ..config import stage_config
from ..errors import ConfigError, DataError
from ..io import log, write_json
from ..judge import confidence_filter, load_judge
from ..runtime import resolve_device
from ..synthesis import balance_counts, synthesize, write_synthetic


def run(params: Mapping, *, data: str = "data/prepared", model: str = "models/gan.pt",
        judge: str = "models/judge.pt", out: str = "data/synthetic",
        metrics: str = "metrics/synthesize.json") -> dict:
    """With ``synthesize.filter_threshold`` > 0, only samples the judge classifies as their label
    with at least that confidence are kept (rejected ones are redrawn; counts stay exact)."""
    cfg, seed = stage_config(params, "synthesize"), params.get("seed", 0)
    real = D.load_prepared(data, splits=("train",))["train"]
    state = load_checkpoint(model)
    generator, classes = kept_generator(state, model, resolve_device(cfg.device),
                                        accept_failed=cfg.accept_failed_gan)
    kept = state.get("best") or {}
    if tuple(classes) != real.classes:
        raise DataError(f"{model} was trained on classes {list(classes)} but {data} has "
                        f"{list(real.classes)}; re-run the train stage")
    counts = balance_counts(real.labels, num_classes=len(classes), target=cfg.target,
                            multiple=cfg.multiple, classes=classes)
    if cfg.minority_only:
        minority = D.minority_classes(real.counts())
        counts = {c: n if c in minority else 0 for c, n in counts.items()}
    check_room(out, sum(counts.values()), real.images.shape[1:], generator.hparams["z_dim"])
    keep, tally = _sample_filter(judge, cfg.filter_threshold, classes, cfg.device)
    images, labels = synthesize(generator, counts, batch_size=cfg.batch_size, seed=seed,
                                device=cfg.device, amp=cfg.amp, keep=keep,
                                max_draws=cfg.max_draws)
    drew = kept and {"epoch": kept["epoch"], "passed_guards": kept["guards"]["passed"],
                     "reasons": kept["guards"]["reasons"]}
    write_synthetic(out, images, labels, classes, generator=drew or None)
    summary = {"total": int(len(labels)),
               "per_class": {classes[c]: n for c, n in counts.items()}}
    if kept:
        summary["gan"] = {"epoch": kept["epoch"], "passed_guards": kept["guards"]["passed"]}
        if not kept["guards"]["passed"]:
            log("synthesize", f"WARNING: drawing from a generator that failed its quality "
                              f"guards ({'; '.join(kept['guards']['reasons'])})")
    if keep is not None:
        drawn = max(tally["drawn"], 1)
        summary["filter"] = {"threshold": cfg.filter_threshold, "drawn": tally["drawn"],
                             "acceptance_rate": round(tally["kept"] / drawn, 4)}
    write_json(metrics, summary)
    log("synthesize", f"{summary['total']} samples written to {out}")
    if not summary["total"]:
        log("synthesize", f"WARNING: no sample drawn: {D.NOTHING_DRAWN}")
    return summary


def _sample_filter(judge: str, threshold: float, classes: tuple[str, ...], device: str):
    """The judge's confidence filter (None when threshold is 0) and a tally of its decisions."""
    tally = {"drawn": 0, "kept": 0}
    if threshold <= 0:
        return None, tally
    model, judged = load_judge(judge, device)
    if judged != tuple(classes):
        raise DataError(f"{judge} was fit on classes {list(judged)} but the GAN on "
                        f"{list(classes)}; re-run the judge stage")
    keep_confident = confidence_filter(model, threshold)

    def keep(images, labels):
        ok = keep_confident(images, labels)
        tally["drawn"] += len(ok)
        tally["kept"] += int(ok.sum())
        return ok

    return keep, tally


def check_room(out: str, total: int, shape: tuple[int, ...], z_dim: int) -> None:
    """Before drawing: the samples are held in memory (their noise, the drawn batches and the
    joined images at the peak), then written as PNGs (a file-system block or more each) and as
    one .npy; a count that cannot fit (a multiple of 1,000 meant as 1.0) is refused now, not
    after the memory or the disk runs out."""
    size = int(np.prod(shape))
    memory, disk = total * (2 * size + 4 * z_dim), total * (size + max(size, 4096))
    where = next(p for p in Path(out).absolute().parents if p.exists())
    free, available = shutil.disk_usage(where).free, _available_memory()
    short = ([f"{_size(disk)} on disk ({_size(free)} free in {where})"] if disk > free else []) + (
        [f"{_size(memory)} of memory ({_size(available)} available)"]
        if available is not None and memory > available else [])
    if short:
        raise ConfigError(f"synthesize: {total:,} samples of {'×'.join(map(str, shape))} need "
                          f"about {' and '.join(short)}; lower synthesize.multiple or "
                          "synthesize.target")


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), in bytes; None where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(n: float) -> str:
    """Bytes as people read them: 812 B, 10.4 MB, 2,560.0 TB."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"
