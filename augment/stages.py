"""Stage entry points: read one section of the params, validate it, call the library, write
outputs atomically. The CLI and the Prefect flows both call these; nothing else reads params.

Every function takes the already-loaded params mapping (see :func:`augment.config.load_params`)
and output paths with the defaults that ``dvc.yaml`` uses. Each returns a small summary dict.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

from . import data as D
from .config import stage_config
from .errors import ConfigError, DataError, TrainingError
from .io import write_json
from .runtime import resolve_device

# Each stage imports the heavy modules it alone needs (torchvision, sklearn, matplotlib,
# dvclive: 1-3 s each on a small CPU), so a stage process pays only for its own.

Runner = Callable[[Callable[..., dict], Iterable[dict]], list[dict]]


def _log(stage: str, message: str) -> None:
    print(f"[{stage}] {message}", flush=True)


# ------------------------------------------------------------------------------------- prepare
def prepare(params: Mapping, *, out: str = "data/prepared",
            metrics: str = "metrics/prepare.json") -> dict:
    """Load the source, conform size/channels, split train/val/test, apply the long tail.

    A test or val split the source gives (a torchvision set's test split; an image folder's
    ``test/``, ``val/``) is used whole, conformed like the pool; a split it does not give is
    carved from the pool (``test_fraction``, then ``val_fraction``). ``max_per_class`` caps
    the pool only, and the long tail thins train only.
    """
    from .sources import load_source

    cfg, seed = stage_config(params, "prepare"), params.get("seed", 0)
    loaded = load_source(
        cfg.source, root=cfg.root, download=cfg.download, manifest=cfg.manifest,
        path_column=cfg.path_column, label_column=cfg.label_column,
        image_size=cfg.image_size, channels=cfg.channels, classes=cfg.classes)
    skipped, stats = loaded.skipped, loaded.stats
    _warn_loaded(skipped, stats, image_size=cfg.image_size, out=out)
    pool = D.conform(loaded.pool, image_size=cfg.image_size, channels=cfg.channels)
    D.check_classes(pool)
    if cfg.max_per_class is not None:
        pool = D.cap_per_class(pool, cfg.max_per_class, seed=seed)
    pool, test = _given_or_carved(loaded.test, pool, cfg.test_fraction, cfg, seed=seed)
    train, val = _given_or_carved(loaded.val, pool, cfg.val_fraction, cfg, seed=seed)
    train = D.long_tail(train, cfg.imbalance_ratio, seed=seed)
    splits = {"train": train, "val": val, "test": test}
    origin = {name: "carved" if part is None else "given"
              for name, part in (("val", loaded.val), ("test", loaded.test))}
    D.save_prepared(out, splits, skipped=skipped)
    counts = train.counts()
    summary = {"skipped_files": len(skipped), "upscaled_images": int(stats.get("upscaled", 0)),
               "classes": len(train.classes), "image_shape": list(train.images.shape[1:]),
               **{f"n_{name}": int(len(part.labels)) for name, part in splits.items()},
               "splits": origin,
               "train_imbalance": float(counts.max() / counts.min()),
               "train_counts": {c: int(n) for c, n in zip(train.classes, counts)}}
    write_json(metrics, summary)
    _log("prepare", f"{cfg.source}: train {len(train.labels)} / val {len(val.labels)} "
                    f"({origin['val']}) / test {len(test.labels)} ({origin['test']}), "
                    f"image {summary['image_shape']}")
    return summary


def _warn_loaded(skipped: list, stats: dict, *, image_size: int | None, out: str) -> None:
    if skipped:
        _log("prepare", f"WARNING: skipped {len(skipped)} file(s) (unreadable or not images); "
                        f"listed in {out}/skipped.csv")
    if stats.get("upscaled"):
        _log("prepare", f"WARNING: {stats['upscaled']} image(s) smaller than image_size "
                        f"{image_size} were upscaled")


def _given_or_carved(given: D.ImageSet | None, pool: D.ImageSet, fraction: float, cfg, *,
                     seed: int) -> tuple[D.ImageSet, D.ImageSet]:
    """(the pool left, a split): the source's own split conformed like the pool, or
    ``fraction`` of the pool carved out, stratified by class."""
    if given is None:
        return D.stratified_split(pool, fraction, seed=seed)
    return pool, D.conform(given, image_size=cfg.image_size, channels=cfg.channels)


# --------------------------------------------------------------------------------------- judge
def judge(params: Mapping, *, data: str = "data/prepared", out: str = "models/judge.pt",
          metrics: str = "metrics/judge.json") -> dict:
    """Fit the judge classifier on the real train split (selected on val): FID features, filter."""
    from .judge import save_judge, train_judge

    cfg, seed = stage_config(params, "judge"), params.get("seed", 0)
    splits = D.load_prepared(data, splits=("train", "val"))
    model, info = train_judge(splits["train"], splits["val"], seed=seed, **cfg.fit_kwargs())
    save_judge(out, model, classes=splits["train"].classes, width=cfg.width, info=info)
    write_json(metrics, info)
    _log("judge", f"val balanced accuracy {info['val_balanced_accuracy']:.4f} "
                  f"(epoch {info['epoch']})")
    return info


# --------------------------------------------------------------------------------------- train
def train(params: Mapping, *, data: str = "data/prepared", out: str = "models/gan.pt",
          samples: str = "plots/train/samples.png", logdir: str = "dvclive/train",
          judge: str | None = "models/judge.pt", quality: str = "metrics/quality.json",
          settings: str = "metrics/train_config.json",
          resume_dir: str | None = None, resume: bool = False,
          dry_run: bool = False) -> dict:
    """Train the cGAN, log losses with dvclive, checkpoint every ``checkpoint_every`` epochs.

    With a ``judge``, every checkpoint is scored (domain FID, judge accuracy, diversity) and
    checked by the quality guards (:mod:`augment.guards`); ``out`` keeps the last state and the
    best checkpoint's generator, which synthesis uses, and ``quality`` gets that one's report.
    Checkpoints go to ``resume_dir`` (default: ``train-resume`` beside ``out``) under a
    fingerprint of the settings, data, judge and code, and an interrupted run with the same
    fingerprint continues from its last one (on the CPU ending bit for bit as an uninterrupted
    run); ``resume`` continues from ``out`` instead.
    ``settings`` gets every setting the run used, presets and rules applied; ``dry_run`` prints
    them and trains nothing.
    """
    from . import distributed, guards
    from .checkpoint import load_checkpoint, save_checkpoint
    from .plots import save_png
    from .runtime import bf16_native
    from .synthesize import sample_grid
    from .train import resolve_for_data, train_gan

    cfg, seed = stage_config(params, "train"), params.get("seed", 0)
    world = distributed.current()  # torchrun's process group when it launched this process
    ranks, local = ((world.size, world.local_size) if distributed.launched()
                    else (cfg.nproc, cfg.nproc))
    real = D.load_prepared(data, splits=("train",))["train"]
    device = _rank_device(cfg.device, local, world.local_rank)
    resolved = resolve_for_data(cfg, real, device)
    distributed.check_batch(resolved.batch_size, ranks)
    used = {"seed": seed, **dataclasses.asdict(resolved), "nproc": ranks,
            "bf16": resolved.amp and bf16_native(device)}
    if dry_run:
        print(json.dumps(used, indent=2))
        return {"settings": used}
    if ranks > 1 and not distributed.launched():  # this process becomes torchrun's agent
        return distributed.launch(train, ranks, params, data=data, out=out, samples=samples,
                                  logdir=logdir, judge=judge, quality=quality, settings=settings,
                                  resume_dir=resume_dir, resume=resume)
    if world.rank > 0:  # trains its share; rank 0 decides where to start, scores and writes
        train_gan(real, resolved, seed=seed, device=device, world=world,
                  resume=world.broadcast_object(None))
        return {"rank": world.rank}
    assess, judge_val = _quality_probe(judge, real, seed=seed, device=device)
    partial = _partial_checkpoint(resume_dir or Path(out).with_name("train-resume"), used, real,
                                  judge)
    if resume and Path(out).is_file():
        start = load_checkpoint(out)
    else:
        start = load_checkpoint(partial) if partial.is_file() else None
        if start is not None:
            _log("train", f"resumed from epoch {start['epoch']} ({partial}: an interrupted run "
                          "with the same settings, data, judge and code)")
    world.broadcast_object(start)
    best = start.get("best") if start else None
    t0 = time.perf_counter()

    def score(epoch: int, gan) -> dict:
        """The checkpoint's report; it becomes ``best`` if it ranks higher."""
        nonlocal best
        report = assess(gan.ema.module)
        if report:
            entry = {"epoch": epoch, "quality": report, "guards": _guards(report, judge_val, cfg)}
            if best is None or guards.rank(entry) > guards.rank(best):
                best = {**entry, "generator": {k: v.detach().clone() for k, v in
                                               gan.ema.module.state_dict().items()}}
        return report

    history = list(start["history"]) if start else []
    with _live_log(logdir, history) as log:
        def on_epoch(epoch: int, metrics: dict, gan) -> None:
            record = dict(metrics)
            checkpoint = epoch % cfg.checkpoint_every == 0 or epoch == gan.budget.epochs
            if checkpoint:
                report = score(epoch, gan)
                record |= {k: report[k] for k in QUALITY_CURVES if report.get(k) is not None}
            history.append({"epoch": epoch, **record})
            log(record)
            if checkpoint:
                save_checkpoint(partial, {**gan.state(classes=real.classes, epoch=epoch,
                                                      history=history), "best": best})

        gan = train_gan(real, resolved, seed=seed, device=device, resume=start,
                        on_epoch=on_epoch, world=world)
    if judge is not None and best is None:  # resumed at or past train.epochs: no epoch ran
        score(int(start["epoch"]), gan)
    epochs = gan.budget.done  # train.epochs, the epochs a time budget reached, or a resumed run's
    state = {**gan.state(classes=real.classes, epoch=epochs, history=history), "best": best}
    _check_guards(best, cfg, out)
    model = gan.ema.module
    if best is not None:
        model = copy.deepcopy(model)
        model.load_state_dict(best["generator"])
    save_png(samples, sample_grid(model, num_classes=len(real.classes),
                                  per_class=cfg.grid_per_class, seed=seed, device=device))
    if best is not None:
        write_json(quality, {**best["quality"], "epoch": best["epoch"], "guards": best["guards"]})
    write_json(settings, {**used, "epochs": epochs})  # train.epochs=this reruns a budget
    save_checkpoint(out, state)
    partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    _log("train", f"{gan.config.preset} ({gan.config.loss}), {epochs} epochs on {device}: "
                  f"{seconds:.1f} s" + (f"; kept epoch {best['epoch']}: FID "
                                        f"{best['quality']['fid']:.2f}, judge accuracy "
                                        f"{best['quality']['judge_accuracy']:.3f}" if best else ""))
    return {"epochs": epochs, "seconds": seconds, "final": history[-1] if history else {},
            "quality": best["quality"] if best else {}, "best_epoch": best and best["epoch"],
            "settings": used}


def _rank_device(device: str, local_ranks: int, local_rank: int):
    """The device of this rank: ``train.device`` resolved, on CUDA the GPU ``local_rank`` (one
    rank per GPU of this machine)."""
    import torch

    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return resolved
    if local_ranks > torch.cuda.device_count():
        raise ConfigError(f"{local_ranks} training ranks on this machine (train.nproc or "
                          f"torchrun --nproc-per-node) but {torch.cuda.device_count()} GPU(s): "
                          "one rank per GPU; lower it, or spread the ranks over nodes")
    return torch.device("cuda", local_rank)


QUALITY_CURVES = ("fid", "fid_class_mean", "judge_accuracy", "diversity_min")


@contextlib.contextmanager
def _live_log(logdir: str, history: list[dict]):
    """A dvclive logger ``log(record)`` (one step per epoch) that first replays ``history``, so
    a resumed run's logs equal an uninterrupted run's."""
    from dvclive import Live

    with Live(logdir, save_dvc_exp=False, dvcyaml=None) as live:
        def log(record: dict) -> None:
            for name, value in record.items():
                live.log_metric(f"{'quality' if name in QUALITY_CURVES else 'train'}/{name}",
                                value)
            live.next_step()

        for past in history:
            log({k: v for k, v in past.items() if k != "epoch"})
        yield log


def _partial_checkpoint(folder: str | Path, used: dict, real: D.ImageSet,
                        judge: str | None) -> Path:
    """Where this run keeps its checkpoints until it ends: ``folder/<fingerprint>.pt``, the
    fingerprint a hash of the settings, the train images, the judge and augment's code. Other
    runs' files there (other settings, data or code) are deleted: they cannot be resumed."""
    import torch

    digest = hashlib.sha256(json.dumps({**used, "torch": torch.__version__}, sort_keys=True,
                                       default=str).encode())
    for blob in (real.images.tobytes(), real.labels.tobytes(), "\0".join(real.classes).encode(),
                 Path(judge).read_bytes() if judge else b"",
                 *(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))):
        digest.update(hashlib.sha256(blob).digest())
    path = Path(folder) / f"{digest.hexdigest()[:20]}.pt"
    for stale in Path(folder).glob("*.pt"):
        if stale != path:
            stale.unlink()
            _log("train", f"discarded {stale}: a checkpoint of other settings, data or code")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _guards(report: dict, judge_val: float | None, cfg) -> dict:
    from . import guards

    return guards.check(report, judge_val_accuracy=judge_val or 0.0,
                        min_judge_ratio=cfg.min_judge_ratio, min_diversity=cfg.min_diversity)


def _check_guards(best: dict | None, cfg, out: str) -> None:
    """No checkpoint passed: fail (``on_collapse: fail``) or warn, naming what to change."""
    if best is None or best["guards"]["passed"]:
        return
    what = (f"no checkpoint passed the quality guards; the best, epoch {best['epoch']} (FID "
            f"{best['quality']['fid']:.2f}): {'; '.join(best['guards']['reasons'])}. The GAN "
            "diverged or collapsed: lower train.lr_g / lr_d, train longer, or check the data")
    if cfg.on_collapse == "fail":
        raise TrainingError(f"{what}; nothing written to {out} (train.on_collapse: warn keeps it, "
                            "flagged)")
    _log("train", f"WARNING: {what}. Kept in {out}, flagged: synthesize refuses it unless "
                  "synthesize.accept_failed_gan: true")


def _quality_probe(judge: str | None, real: D.ImageSet, *, seed: int, device):
    """(generator → fidelity report vs ``real``, one sample per real label; the judge's val
    balanced accuracy); a no-op and None without a judge."""
    if judge is None:
        return (lambda generator: {}), None
    from .fidelity import fidelity_report
    from .judge import judge_info, load_judge
    from .synthesize import synthesize as draw

    model, classes = load_judge(judge, device)
    if classes != real.classes:
        raise DataError(f"{judge} was fit on classes {list(classes)} but the data has "
                        f"{list(real.classes)}; re-run the judge stage")
    counts = dict(enumerate(real.counts().tolist()))

    def assess(generator) -> dict:
        images, labels = draw(generator, counts, seed=seed + 1, device=device)
        return fidelity_report(model, real, images.numpy(), labels.numpy())

    return assess, judge_info(judge)["val_balanced_accuracy"]


# ---------------------------------------------------------------------------------- synthesize
def synthesize(params: Mapping, *, data: str = "data/prepared", model: str = "models/gan.pt",
               judge: str = "models/judge.pt", out: str = "data/synthetic",
               metrics: str = "metrics/synthesize.json") -> dict:
    """Fill every class of the train split up to the target with samples of the generator the
    checkpoint keeps (the best by the quality guards; one that failed them only with
    ``synthesize.accept_failed_gan``).

    With ``synthesize.filter_threshold`` > 0, only samples the judge classifies as their label
    with at least that confidence are kept (rejected ones are redrawn; counts stay exact).
    """
    from .checkpoint import kept_generator, load_checkpoint
    from .synthesize import balance_counts, synthesize as draw, write_synthetic

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
    keep, tally = _sample_filter(judge, cfg.filter_threshold, classes, cfg.device)
    images, labels = draw(generator, counts, batch_size=cfg.batch_size, seed=seed,
                          device=cfg.device, amp=cfg.amp, keep=keep, max_draws=cfg.max_draws)
    drew = kept and {"epoch": kept["epoch"], "passed_guards": kept["guards"]["passed"],
                     "reasons": kept["guards"]["reasons"]}
    write_synthetic(out, images, labels, classes, generator=drew or None)
    summary = {"total": int(len(labels)),
               "per_class": {classes[c]: n for c, n in counts.items()}}
    if kept:
        summary["gan"] = {"epoch": kept["epoch"], "passed_guards": kept["guards"]["passed"]}
        if not kept["guards"]["passed"]:
            _log("synthesize", f"WARNING: drawing from a generator that failed its quality "
                               f"guards ({'; '.join(kept['guards']['reasons'])})")
    if keep is not None:
        drawn = max(tally["drawn"], 1)
        summary["filter"] = {"threshold": cfg.filter_threshold, "drawn": tally["drawn"],
                             "acceptance_rate": round(tally["kept"] / drawn, 4)}
    write_json(metrics, summary)
    _log("synthesize", f"{summary['total']} samples written to {out}")
    return summary


def _sample_filter(judge: str, threshold: float, classes: tuple[str, ...], device: str):
    """The judge's confidence filter (None when threshold is 0) and a tally of its decisions."""
    tally = {"drawn": 0, "kept": 0}
    if threshold <= 0:
        return None, tally
    from .judge import confidence_filter, load_judge

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


# ------------------------------------------------------------------------------------ evaluate
def evaluate(params: Mapping, *, data: str = "data/prepared", synthetic: str = "data/synthetic",
             metrics: str = "metrics/evaluate.json", plots: str = "plots/evaluate",
             report: str = "reports/evaluate.md", runner: Runner | None = None) -> dict:
    """Train the classifier per (variant, seed), select on val, report test metrics with CIs.

    ``runner(fn, jobs)`` maps ``fn(**job)`` over the jobs; the Prefect flow passes one that
    runs them as tasks. Default: in order, in this process (:func:`augment.evaluate.run_grid`).
    """
    from . import analysis
    from .classic import policy_for
    from .evaluate import run_grid

    cfg, seed = stage_config(params, "evaluate"), params.get("seed", 0)
    splits = D.load_prepared(data)
    needs_synthetic = any("synthetic" in v for v in cfg.variants)
    fake = D.load_synthetic(synthetic) if needs_synthetic else None
    if fake is not None:
        D.check_synthetic(fake, splits["train"], synthetic)
    runs, chosen = run_grid(cfg, splits, fake, seed=seed,
                            run=runner or (lambda fn, js: [fn(**j) for j in js]))
    train = splits["train"]
    table = analysis.runs_table(runs, train.counts(), train.classes)
    summary = analysis.summarize(table)
    if any("classic" in v.split("+") for v in cfg.variants) and cfg.classic != "auto":
        summary["classic_policy"] = cfg.classic or policy_for(train.images.shape[1])
    if needs_synthetic and cfg.synthetic_weight not in (1, "auto"):
        summary["synthetic_weight"] = cfg.synthetic_weight
    summary["chosen_on_val"] = chosen
    write_evaluation_plots(Path(plots), table, summary, train.classes)
    _write_report(Path(report), Path(plots), summary, train, fake,
                  warnings=_generator_warning(Path(synthetic)) if fake is not None else [])
    write_json(metrics, analysis.metrics_json(summary))
    for variant, m in summary["variants"].items():
        _log("evaluate", f"{variant:>24}: bal-acc {m['balanced_accuracy']['mean']:.4f}  "
                         f"minority recall {m['minority_recall']['mean']:.4f}")
    _log("evaluate", summary["verdict"])
    return summary


def _slug(variant: str) -> str:
    return variant.replace("+", "_")


def write_evaluation_plots(directory: Path, table, summary: dict,
                           classes: tuple[str, ...]) -> None:
    """Tidy run tables, confusion tables (first seed), per-class recall, CI bar chart."""
    import pandas as pd

    from .analysis import summary_table
    from .io import atomic_path
    from .plots import ci_chart, recall_chart, save_csv

    with atomic_path(directory / "confusion") as tmp:  # one file per variant, none stale
        tmp.mkdir()
        for _, r in table[table["seed"] == table["seed"].min()].iterrows():
            pd.DataFrame({"actual": [classes[i] for i in r["y_true"]],
                          "predicted": [classes[i] for i in r["y_pred"]]}
                         ).to_csv(tmp / f"{_slug(r['variant'])}.csv", index=False)
    recall = pd.DataFrame([{"variant": r["variant"], "seed": r["seed"], "class": c, "recall": v}
                           for _, r in table.iterrows() for c, v in r["per_class_recall"].items()])
    save_csv(directory / "per_class_recall.csv", recall)
    recall_chart(directory / "per_class_recall.png",
                 recall.groupby(["class", "variant"], sort=False, as_index=False)["recall"].mean())
    keep = ["variant", "seed", "n_train", "prior_ratio", "steps_per_epoch", "epoch",
            "val_balanced_accuracy", *[c for c in ("tau",) if c in table],  # posthoc's τ
            "balanced_accuracy", "minority_recall", "accuracy", "macro_f1"]
    save_csv(directory / "runs.csv", table[keep])
    overview = summary_table(summary)
    save_csv(directory / "summary.csv", overview)
    ci_chart(directory / "balanced_accuracy.png", overview)


def _write_report(path: Path, plots: Path, summary: dict, train: D.ImageSet, fake, *,
                  warnings: list[str] = ()) -> None:
    """``reports/evaluate.md`` and the per-class sample grid (real | synthetic) beside it."""
    import os

    from .analysis import markdown_report
    from .io import atomic_path
    from .plots import class_grid, save_png

    grid = path.with_name("samples.png")
    save_png(grid, class_grid((train.images, train.labels), fake, len(train.classes)))
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731 - links relative to the report
    figures = {"balanced accuracy and minority recall, 95 % CI": rel(plots / "balanced_accuracy.png"),
               "per-class recall": rel(plots / "per_class_recall.png"),
               "samples per class: real train (left), synthetic (right)": grid.name}
    counts = dict(zip(train.classes, train.counts().tolist()))
    minority = [train.classes[i] for i in D.minority_classes(train.counts())]
    with atomic_path(path) as tmp:
        tmp.write_text(markdown_report(summary, counts=counts, minority=minority, figures=figures,
                                       notes=[*warnings, *_settings_notes(summary),
                                              *_synthetic_only_notes(summary, train, fake)]))


def _settings_notes(summary: dict) -> list[str]:
    """What the report's rows depend on beyond their names: the classic policy, the weight."""
    notes = []
    if policy := summary.get("classic_policy"):
        notes.append(f"The `classic` part augments with albumentations policy `{policy}` "
                     "(evaluate.classic).")
    if (weight := summary.get("synthetic_weight")) is not None:
        notes.append(f"Synthetic images are drawn {weight:g} times as often as real ones "
                     "(evaluate.synthetic_weight); a GAN variant's prior max/min is that of "
                     "the class mass so drawn.")
    for v, c in summary.get("chosen_on_val", {}).items():
        picks = ([f"classic `{c['classic']}`"] if "classic" in v.split("+") else []) + (
            [f"synthetic_weight {c['synthetic_weight']:g}"] if "synthetic" in v.split("+") else [])
        notes.append(f"`{v}` chose {' and '.join(picks)} on the first seed's val, of "
                     f"{c['tried']} settings ({c['seconds']:g} s); every seed trains with it.")
    return notes


def _generator_warning(synthetic: Path) -> list[str]:
    """A loud line when the synthetic samples come from a GAN that failed its quality guards
    (kept with ``train.on_collapse: warn``, drawn with ``synthesize.accept_failed_gan``)."""
    try:
        drew = json.loads((synthetic / "generator.json").read_text())
    except (OSError, ValueError):
        return []
    if drew.get("passed_guards", True):
        return []
    return [f"**WARNING: the synthetic samples come from a generator that failed the train "
            f"stage's quality guards (epoch {drew.get('epoch')}: "
            f"{'; '.join(drew.get('reasons', []))}). Their rows measure a broken GAN.**"]


def _synthetic_only_notes(summary: dict, train: D.ImageSet, fake) -> list[str]:
    """A caveat for variants that train on synthetic samples alone when the synthetic set only
    tops classes up: a class with no samples there is unlearnable, so the row is no measure
    of sample quality."""
    only = [v for v in summary["variants"] if "synthetic" in v.split("+")
            and "real" not in v.split("+")]
    if not only or fake is None:
        return []
    present = set(fake[1].tolist())
    absent = [name for c, name in enumerate(train.classes) if c not in present]
    if not absent:
        return []
    return [f"Note: {', '.join(f'`{v}`' for v in only)} trains on the {len(fake[1])} synthetic "
            f"images that top the real classes up, with none of class(es) {', '.join(absent)}: "
            "it says nothing about sample quality. For that, raise `synthesize.multiple` (e.g. "
            "2, with `minority_only: false`) so every class gets samples, or run "
            "`benchmarks/cas.py` (CAS)."]
