"""Which checkpoint a training run keeps, and where an interrupted run resumes.

Every ``train.checkpoint_every`` epochs (and at the last) the judge scores the EMA generator
(:mod:`augment.fidelity`), the quality guards check it (:mod:`augment.guards`) and the best so
far is kept; the run's whole state goes to a file named by a fingerprint of its settings, data,
judge and code, from which a run with the same fingerprint continues (on the CPU bit for bit).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import guards
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .data import ImageSet
from .errors import DataError, TrainingError
from .fidelity import fidelity_report
from .judge import judge_info, load_judge
from .synthesis import synthesize
from .train import GAN, train_gan

QUALITY_CURVES = ("fid", "fid_class_mean", "judge_accuracy", "diversity_min")
CODE = Path(__file__).parent  # the package whose code is part of the fingerprint


def quality_probe(judge: str | None, real: ImageSet, *, seed: int, device):
    """(generator → fidelity report against ``real``, one sample per real label; the judge's val
    balanced accuracy); a no-op and None without a judge."""
    if judge is None:
        return (lambda generator: {}), None
    model, classes = load_judge(judge, device)
    if classes != real.classes:
        raise DataError(f"{judge} was fit on classes {list(classes)} but the data has "
                        f"{list(real.classes)}; re-run the judge stage")
    counts = dict(enumerate(real.counts().tolist()))

    def assess(generator) -> dict:
        images, labels = synthesize(generator, counts, seed=seed + 1, device=device)
        return fidelity_report(model, real, images.numpy(), labels.numpy())

    return assess, judge_info(judge)["val_balanced_accuracy"]


@dataclass
class Keeper:
    """Scores checkpoints and keeps the best by :func:`augment.guards.rank`."""

    assess: Callable[[torch.nn.Module], dict]
    judge_val: float | None
    cfg: TrainConfig
    best: dict | None = None

    def score(self, epoch: int, generator: torch.nn.Module) -> dict:
        """The checkpoint's report; it becomes ``best`` if it ranks higher."""
        report = self.assess(generator)
        if report:
            entry = {"epoch": epoch, "quality": report, "guards": guards.check(
                report, judge_val_accuracy=self.judge_val or 0.0,
                min_judge_ratio=self.cfg.min_judge_ratio, min_diversity=self.cfg.min_diversity)}
            if self.best is None or guards.rank(entry) > guards.rank(self.best):
                self.best = {**entry, "generator": {k: v.detach().clone()
                                                    for k, v in generator.state_dict().items()}}
        return report


def train_checkpointed(real: ImageSet, cfg: TrainConfig, *, seed: int, device, world,
                       judge: str | None, partial: Path, start: dict | None,
                       log: Callable[[dict], None]) -> tuple[GAN, list[dict], dict | None]:
    """:func:`augment.train.train_gan` from ``start`` (a checkpoint, or None), scoring and saving
    to ``partial`` at every checkpoint; ``log(record)`` gets each epoch's metrics and scores.
    Returns the GAN, the whole run's history and the best checkpoint (None without a judge)."""
    assess, judge_val = quality_probe(judge, real, seed=seed, device=device)
    keeper = Keeper(assess, judge_val, cfg, best=start.get("best") if start else None)
    history = list(start["history"]) if start else []

    def on_epoch(epoch: int, metrics: dict, gan: GAN) -> None:
        record = dict(metrics)
        checkpoint = epoch % cfg.checkpoint_every == 0 or epoch == gan.budget.epochs
        if checkpoint:
            report = keeper.score(epoch, gan.ema.module)
            record |= {k: report[k] for k in QUALITY_CURVES if report.get(k) is not None}
        history.append({"epoch": epoch, **record})
        log(record)
        if checkpoint and stalled(history, cfg.patience):
            gan.budget.stop()
        if checkpoint:
            save_checkpoint(partial, {**gan.state(classes=real.classes, epoch=epoch,
                                                  history=history), "best": keeper.best})

    gan = train_gan(real, cfg, seed=seed, device=device, resume=start, on_epoch=on_epoch,
                    world=world)
    if judge is not None and keeper.best is None:  # resumed at or past the last epoch
        keeper.score(int(start["epoch"]), gan.ema.module)
    return gan, history, keeper.best


def stalled(history: list[dict], patience: int | None) -> bool:
    """Early stopping: whether the domain FID of the last ``patience`` checkpoints is no lower
    than the best before them (False when off, or without a judge's scores)."""
    fids = [h["fid"] for h in history if "fid" in h]
    return patience is not None and len(fids) > patience and \
        min(fids[-patience:]) >= min(fids[:-patience])


def kept_generator(gan: GAN, best: dict | None) -> torch.nn.Module:
    """The generator synthesis uses: the best checkpoint's, or the last EMA generator."""
    if best is None:
        return gan.ema.module
    model = copy.deepcopy(gan.ema.module)
    model.load_state_dict(best["generator"])
    return model


def resume_file(folder: str | Path, used: dict, real: ImageSet,
                judge: str | None) -> tuple[Path, list[Path]]:
    """(where this run keeps its checkpoints until it ends, the stale files deleted):
    ``folder/<fingerprint>.pt``, the fingerprint a hash of the settings, the train images, the
    judge and augment's code. Other runs' files there cannot be resumed."""
    digest = hashlib.sha256(json.dumps({**used, "torch": torch.__version__}, sort_keys=True,
                                       default=str).encode())
    code = sorted(CODE.rglob("*.py"), key=lambda p: p.relative_to(CODE).as_posix())
    for blob in (real.images.tobytes(), real.labels.tobytes(), "\0".join(real.classes).encode(),
                 Path(judge).read_bytes() if judge else b"", *(p.read_bytes() for p in code)):
        digest.update(hashlib.sha256(blob).digest())
    path = Path(folder) / f"{digest.hexdigest()[:20]}.pt"
    stale = [p for p in Path(folder).glob("*.pt") if p != path]
    for p in stale:
        p.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, stale


def check_kept(best: dict | None, cfg: TrainConfig, out: str) -> str | None:
    """None when the kept checkpoint passed (or there is no judge); when none passed, raise
    (``on_collapse: fail``) or return the warning, naming what to change."""
    if best is None or best["guards"]["passed"]:
        return None
    what = (f"no checkpoint passed the quality guards; the best, epoch {best['epoch']} (FID "
            f"{best['quality']['fid']:.2f}): {'; '.join(best['guards']['reasons'])}. The GAN "
            "diverged or collapsed (lower train.lr_g / lr_d, train longer, check the data), or "
            "the judge is too weak to tell (the judge stage warns when it is near chance: raise "
            "judge.epochs or add images)")
    if cfg.on_collapse == "fail":
        raise TrainingError(f"{what}; nothing written to {out} (train.on_collapse: warn keeps it, "
                            "flagged)")
    return (f"WARNING: {what}. Kept in {out}, flagged: synthesize refuses it unless "
            "synthesize.accept_failed_gan: true")
