"""The train stage: train the cGAN, log every epoch with dvclive, keep the best checkpoint by
the judge's scores and the quality guards (:mod:`augment.selection`), write the model, its
sample grid, its quality report and every setting the run used."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Mapping

from dvclive import Live

from .. import data as D
from .. import distributed, selection
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import stage_config
from ..diffaug import make_diffaug
from ..errors import DataError
from ..io import log, write_json
from ..plots import save_png
from ..runtime import bf16_native
from ..synthesis import sample_grid
from ..train import resolve_for_data, train_gan


def run(params: Mapping, *, data: str = "data/prepared", out: str = "models/gan.pt",
        samples: str = "plots/train/samples.png", logdir: str = "dvclive/train",
        judge: str | None = "models/judge.pt", quality: str = "metrics/quality.json",
        settings: str = "metrics/train_config.json", resume_dir: str | None = None,
        resume: bool = False, dry_run: bool = False) -> dict:
    """``out`` keeps the last state and the best checkpoint's generator (synthesis uses it);
    ``quality`` gets that one's report. An interrupted run with the same settings, data, judge
    and code continues from its last checkpoint in ``resume_dir`` (default: ``train-resume``
    beside ``out``); ``resume`` continues from ``out`` instead. ``dry_run`` prints the settings
    (presets and rules applied) and trains nothing. ``train.nproc`` > 1 (or torchrun) trains
    data-parallel; rank 0 scores and writes."""
    cfg, seed = stage_config(params, "train"), params.get("seed", 0)
    world = distributed.current()  # torchrun's process group when it launched this process
    ranks, local = ((world.size, world.local_size) if distributed.launched()
                    else (cfg.nproc, cfg.nproc))
    real = D.load_prepared(data, splits=("train",))["train"]
    device = distributed.rank_device(cfg.device, local, world.local_rank)
    resolved = resolve_for_data(cfg, real, device)
    distributed.check_batch(resolved.batch_size, ranks)
    make_diffaug(resolved.diffaug)  # an unknown op: an error before --dry-run or any output
    used = {"seed": seed, **dataclasses.asdict(resolved), "nproc": ranks,
            "bf16": resolved.amp and bf16_native(device)}
    if dry_run:
        print(json.dumps(used, indent=2))
        return {"settings": used}
    if judge and not Path(judge).is_file():
        raise DataError(f"{judge}: no judge checkpoint; run the judge stage first (augment judge "
                        "/ dvc repro judge): every checkpoint is scored by it")
    paths = dict(data=data, out=out, samples=samples, logdir=logdir, judge=judge,
                 quality=quality, settings=settings, resume_dir=resume_dir, resume=resume)
    if ranks > 1 and not distributed.launched():  # this process becomes torchrun's agent
        return distributed.launch(run, ranks, params, **paths)
    if world.rank > 0:  # trains its share; rank 0 decides where to start, scores and writes
        train_gan(real, resolved, seed=seed, device=device, world=world,
                  resume=world.broadcast_object(None))
        return {"rank": world.rank}
    start, partial = _start(out, resume_dir, resume, used, real, judge)
    world.broadcast_object(start)
    t0 = time.perf_counter()
    with _live_log(logdir, start["history"] if start else []) as live:
        gan, history, best = selection.train_checkpointed(
            real, resolved, seed=seed, device=device, world=world, judge=judge,
            partial=partial, start=start, log=live)
    epochs = gan.budget.done  # train.epochs, the epochs a time budget or patience reached
    if warning := selection.check_kept(best, cfg, out):
        log("train", warning)
    save_png(samples, sample_grid(selection.kept_generator(gan, best), seed=seed, device=device,
                                  num_classes=len(real.classes), per_class=cfg.grid_per_class))
    if best is not None:
        write_json(quality, {**best["quality"], "epoch": best["epoch"], "guards": best["guards"]})
        if unmeasured := best["quality"].get("not_measured"):
            log("train", f"note: class(es) {', '.join(unmeasured)} have under 2 train images: no "
                         "per-class FID or diversity for them, and the min_diversity guard "
                         "cannot check their samples (look at them in the sample grid)")
    write_json(settings, {**used, "epochs": epochs})  # train.epochs=this reruns a budget
    save_checkpoint(out, {**gan.state(classes=real.classes, epoch=epochs, history=history),
                          "best": best})
    partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    kept = (f"; kept epoch {best['epoch']}: FID {best['quality']['fid']:.2f}, judge accuracy "
            f"{best['quality']['judge_accuracy']:.3f}" if best else "")
    stop = f" (stopped: FID flat for {cfg.patience} checkpoints)" if gan.budget.stopped else ""
    log("train", f"{gan.config.preset} ({gan.config.loss}), {epochs} epochs{stop} on {device}: "
                 f"{seconds:.1f} s{kept}")
    return {"epochs": epochs, "seconds": seconds, "final": history[-1] if history else {},
            "quality": best["quality"] if best else {}, "best_epoch": best and best["epoch"],
            "settings": used}


def _start(out: str, resume_dir: str | None, resume: bool, used: dict, real: D.ImageSet,
           judge: str | None) -> tuple[dict | None, Path]:
    """(the checkpoint to start from: ``out`` with ``resume``, else an interrupted run's file,
    else None; the file this run checkpoints to)."""
    folder = resume_dir or Path(out).with_name("train-resume")
    partial, stale = selection.resume_file(folder, used, real, judge)
    for path in stale:
        log("train", f"discarded {path}: a checkpoint of other settings, data or code")
    if resume and Path(out).is_file():
        return load_checkpoint(out), partial
    if not partial.is_file():
        return None, partial
    start = load_checkpoint(partial)
    log("train", f"resumed from epoch {start['epoch']} ({partial}: an interrupted run "
                 "with the same settings, data, judge and code)")
    return start, partial


@contextlib.contextmanager
def _live_log(logdir: str, history: list[dict]):
    """A dvclive logger ``log(record)`` (one step per epoch) that first replays ``history``, so
    a resumed run's logs equal an uninterrupted run's."""
    with Live(logdir, save_dvc_exp=False, dvcyaml=None) as live:
        def log_record(record: dict) -> None:
            for name, value in record.items():
                group = "quality" if name in selection.QUALITY_CURVES else "train"
                live.log_metric(f"{group}/{name}", value)
            live.next_step()

        for past in history:
            log_record({k: v for k, v in past.items() if k != "epoch"})
        yield log_record
