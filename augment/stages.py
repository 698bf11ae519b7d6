"""Stage entry points: read one section of the params, validate it, call the library, write
outputs atomically. The CLI and the Prefect flows both call these; nothing else reads params.

Every function takes the already-loaded params mapping (see :func:`augment.config.load_params`)
and output paths with the defaults that ``dvc.yaml`` uses. Each returns a small summary dict.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

from . import data as D
from .config import stage_config
from .errors import DataError
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
    """Load the source, conform size/channels, split train/val/test, apply the long tail."""
    from .sources import load_source

    cfg, seed = stage_config(params, "prepare"), params.get("seed", 0)
    pool, test, skipped, stats = load_source(
        cfg.source, root=cfg.root, download=cfg.download, manifest=cfg.manifest,
        path_column=cfg.path_column, label_column=cfg.label_column,
        image_size=cfg.image_size, channels=cfg.channels, classes=cfg.classes)
    if skipped:
        _log("prepare", f"WARNING: skipped {len(skipped)} file(s) (unreadable or not images); "
                        f"listed in {out}/skipped.csv")
    if stats.get("upscaled"):
        _log("prepare", f"WARNING: {stats['upscaled']} image(s) smaller than image_size "
                        f"{cfg.image_size} were upscaled")
    pool = D.conform(pool, image_size=cfg.image_size, channels=cfg.channels)
    D.check_classes(pool)
    if cfg.max_per_class is not None:
        pool = D.cap_per_class(pool, cfg.max_per_class, seed=seed)
    if test is None:
        pool, test = D.stratified_split(pool, cfg.test_fraction, seed=seed)
    else:
        test = D.conform(test, image_size=cfg.image_size, channels=cfg.channels)
    train, val = D.stratified_split(pool, cfg.val_fraction, seed=seed)
    train = D.long_tail(train, cfg.imbalance_ratio, seed=seed)
    splits = {"train": train, "val": val, "test": test}
    D.save_prepared(out, splits, skipped=skipped)
    counts = train.counts()
    summary = {"skipped_files": len(skipped), "upscaled_images": int(stats.get("upscaled", 0)),
               "classes": len(train.classes), "image_shape": list(train.images.shape[1:]),
               **{f"n_{name}": int(len(part.labels)) for name, part in splits.items()},
               "train_imbalance": float(counts.max() / counts.min()),
               "train_counts": {c: int(n) for c, n in zip(train.classes, counts)}}
    write_json(metrics, summary)
    _log("prepare", f"{cfg.source}: train {len(train.labels)} / val {len(val.labels)} / "
                    f"test {len(test.labels)}, image {summary['image_shape']}")
    return summary


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
          settings: str = "metrics/train_config.json", resume: bool = False,
          dry_run: bool = False) -> dict:
    """Train the cGAN, log losses with dvclive, checkpoint every ``checkpoint_every`` epochs.

    With a ``judge``, every checkpoint also logs the domain FID, judge accuracy and diversity
    of the EMA generator (one sample per real train label), and ``quality`` gets the final report.
    ``settings`` gets every setting the run used, the presets' and rules' choices filled in;
    ``dry_run`` prints them and trains nothing.
    """
    from dvclive import Live

    from .checkpoint import load_checkpoint, save_checkpoint
    from .plots import save_png
    from .runtime import bf16_native
    from .synthesize import sample_grid
    from .train import resolve_for_data, train_gan

    cfg, seed = stage_config(params, "train"), params.get("seed", 0)
    real = D.load_prepared(data, splits=("train",))["train"]
    device = resolve_device(cfg.device)
    resolved = resolve_for_data(cfg, real, device)
    used = {"seed": seed, **dataclasses.asdict(resolved),
            "bf16": resolved.amp and bf16_native(device)}
    if dry_run:
        print(json.dumps(used, indent=2))
        return {"settings": used}
    assess = _quality_probe(judge, real, seed=seed, device=cfg.device)
    start = load_checkpoint(out) if resume and Path(out).is_file() else None
    t0 = time.perf_counter()
    with Live(logdir, resume=start is not None, save_dvc_exp=False, dvcyaml=None) as live:
        def on_epoch(epoch: int, metrics: dict, gan) -> None:
            record = dict(metrics)
            checkpoint = epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs
            if checkpoint:
                report.update(assess(gan.ema.module))
                record |= {k: report[k] for k in QUALITY_CURVES if report.get(k) is not None}
            history.append({"epoch": epoch, **record})
            for name, value in record.items():
                live.log_metric(f"{'quality' if name in QUALITY_CURVES else 'train'}/{name}",
                                value)
            live.next_step()
            if checkpoint:
                save_checkpoint(out, gan.state(classes=real.classes, epoch=epoch, history=history))

        history, report = (list(start["history"]) if start else []), {}
        gan = train_gan(real, resolved, seed=seed, device=device, resume=start,
                        on_epoch=on_epoch)
    grid = sample_grid(gan.ema.module, num_classes=len(real.classes),
                       per_class=cfg.grid_per_class, seed=seed, device=cfg.device)
    save_png(samples, grid)
    seconds = time.perf_counter() - t0
    if judge is not None:
        report = report or assess(gan.ema.module)  # resumed at or past train.epochs: no epoch ran
        write_json(quality, report)
    write_json(settings, used)
    _log("train", f"{gan.config.preset} ({gan.config.loss}), {cfg.epochs} epochs on "
                  f"{resolve_device(cfg.device)}: {seconds:.1f} s" +
                  (f"; FID {report['fid']:.2f}, judge accuracy {report['judge_accuracy']:.3f}"
                   if report else ""))
    return {"epochs": cfg.epochs, "seconds": seconds, "final": history[-1] if history else {},
            "quality": report, "settings": used}


QUALITY_CURVES = ("fid", "fid_class_mean", "judge_accuracy", "diversity_min")


def _quality_probe(judge: str | None, real: D.ImageSet, *, seed: int, device: str):
    """generator → fidelity report vs ``real`` (one sample per real label); no-op without judge."""
    if judge is None:
        return lambda generator: {}
    from .fidelity import fidelity_report
    from .judge import load_judge
    from .synthesize import synthesize as draw

    model, classes = load_judge(judge, device)
    if classes != real.classes:
        raise DataError(f"{judge} was fit on classes {list(classes)} but the data has "
                        f"{list(real.classes)}; re-run the judge stage")
    counts = dict(enumerate(real.counts().tolist()))

    def assess(generator) -> dict:
        images, labels = draw(generator, counts, seed=seed + 1, device=device)
        return fidelity_report(model, real, images.numpy(), labels.numpy())

    return assess


# ---------------------------------------------------------------------------------- synthesize
def synthesize(params: Mapping, *, data: str = "data/prepared", model: str = "models/gan.pt",
               judge: str = "models/judge.pt", out: str = "data/synthetic",
               metrics: str = "metrics/synthesize.json") -> dict:
    """Fill every class of the train split up to the target with samples of the EMA generator.

    With ``synthesize.filter_threshold`` > 0, only samples the judge classifies as their label
    with at least that confidence are kept (rejected ones are redrawn; counts stay exact).
    """
    from .checkpoint import load_generator
    from .synthesize import balance_counts, synthesize as draw, write_synthetic

    cfg, seed = stage_config(params, "synthesize"), params.get("seed", 0)
    real = D.load_prepared(data, splits=("train",))["train"]
    generator, classes = load_generator(model, resolve_device(cfg.device))
    if tuple(classes) != real.classes:
        raise DataError(f"{model} was trained on classes {list(classes)} but {data} has "
                        f"{list(real.classes)}; re-run the train stage")
    counts = balance_counts(real.labels, num_classes=len(classes), target=cfg.target,
                            multiple=cfg.multiple, classes=classes)
    if cfg.minority_only:
        minority = D.minority_classes(real.counts())
        counts = {c: n if c in minority else 0 for c, n in counts.items()}
    keep, tally = _sample_filter(judge, cfg.filter_threshold, classes, cfg.device)
    images, labels = draw(model, counts, batch_size=cfg.batch_size, seed=seed,
                          device=cfg.device, amp=cfg.amp, keep=keep, max_draws=cfg.max_draws)
    write_synthetic(out, images, labels, classes)
    summary = {"total": int(len(labels)),
               "per_class": {classes[c]: n for c, n in counts.items()}}
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
    runs them as tasks. Default: in order, in this process.
    """
    from . import analysis
    from .evaluate import common_steps, evaluate_variant

    cfg, seed = stage_config(params, "evaluate"), params.get("seed", 0)
    splits = D.load_prepared(data)
    needs_synthetic = any("synthetic" in v for v in cfg.variants)
    fake = D.load_synthetic(synthetic) if needs_synthetic else None
    if fake is not None:
        D.check_synthetic(fake, splits["train"], synthetic)
    fake_labels = None if fake is None else fake[1]
    steps = (common_steps(cfg.variants, splits["train"].labels, fake_labels,
                          batch_size=cfg.batch_size) if cfg.equal_steps else None)
    jobs = [dict(variant=v, splits=splits, synthetic=fake, seed=seed + i, steps_per_epoch=steps,
                 **cfg.fit_kwargs())
            for i in range(cfg.seeds) for v in cfg.variants]
    runs = (runner or (lambda fn, js: [fn(**j) for j in js]))(evaluate_variant, jobs)
    train = splits["train"]
    table = analysis.runs_table(runs, train.counts(), train.classes)
    summary = analysis.summarize(table)
    write_evaluation_plots(Path(plots), table, summary, train.classes)
    _write_report(Path(report), Path(plots), summary, train, fake)
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
    keep = ["variant", "seed", "n_train", "steps_per_epoch", "epoch", "val_balanced_accuracy",
            "balanced_accuracy", "minority_recall", "accuracy", "macro_f1"]
    save_csv(directory / "runs.csv", table[keep])
    overview = summary_table(summary)
    save_csv(directory / "summary.csv", overview)
    ci_chart(directory / "balanced_accuracy.png", overview)


def _write_report(path: Path, plots: Path, summary: dict, train: D.ImageSet, fake) -> None:
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
                                       notes=_synthetic_only_notes(summary, train, fake)))


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
