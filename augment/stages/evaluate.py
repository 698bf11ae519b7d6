"""The evaluate stage: train the classifier per (variant, seed), select on val, report test
metrics with confidence intervals: ``metrics/evaluate.json``, plots, ``reports/evaluate.md``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, Mapping

import pandas as pd

from .. import data as D
from ..analysis import markdown_report, metrics_json, runs_table, summarize, summary_table
from ..classic import policy_for
from ..config import stage_config, variant_parts
from ..errors import DataError
from ..evaluate import run_grid
from ..io import ANYTHING, atomic_path, log, write_json
from ..plots import ci_chart, class_grid, recall_chart, save_csv, save_png

Runner = Callable[[Callable[..., dict], Iterable[dict]], list[dict]]


def run(params: Mapping, *, data: str = "data/prepared", synthetic: str = "data/synthetic",
        metrics: str = "metrics/evaluate.json", plots: str = "plots/evaluate",
        report: str = "reports/evaluate.md", runner: Runner | None = None) -> dict:
    """``runner(fn, jobs)`` maps ``fn(**job)`` over the jobs; the Prefect flow passes one that
    runs them as tasks. Default: in order, in this process (:func:`augment.evaluate.run_grid`).
    """
    cfg, seed = stage_config(params, "evaluate"), params.get("seed", 0)
    splits = D.load_prepared(data)
    needs_synthetic = any("synthetic" in v for v in cfg.variants)
    fake = D.load_synthetic(synthetic) if needs_synthetic else None
    if fake is not None:
        D.check_synthetic(fake, splits["train"], synthetic)
        if not len(fake[1]):  # the synthetic variants would be their real-only twins, relabelled
            raise DataError(f"{synthetic}: holds no synthetic samples, so the synthetic "
                            f"variants would measure nothing: {D.NOTHING_DRAWN}, or drop the "
                            "synthetic variants from evaluate.variants")
    runs, chosen = run_grid(cfg, splits, fake, seed=seed,
                            run=runner or (lambda fn, js: [fn(**j) for j in js]))
    train = splits["train"]
    table = runs_table(runs, train.counts(), train.classes)
    summary = summarize(table)
    if any("classic" in variant_parts(v) for v in cfg.variants) and cfg.classic != "auto":
        summary["classic_policy"] = cfg.classic or policy_for(train.images.shape[1])
    summary["chosen_on_val"] = chosen
    warnings = _generator_warning(Path(synthetic)) if fake is not None else []
    if warning := _chance_warning(summary, len(train.classes)):
        warnings.append(warning)
        log("evaluate", f"WARNING: {warning.replace('**', '')}")
    write_evaluation_plots(Path(plots), table, summary, train.classes)
    _write_report(Path(report), Path(plots), summary, train, fake, warnings=warnings)
    write_json(metrics, metrics_json(summary))
    for variant, m in summary["variants"].items():
        log("evaluate", f"{variant:>24}: bal-acc {m['balanced_accuracy']['mean']:.4f}  "
                        f"minority recall {m['minority_recall']['mean']:.4f}")
    log("evaluate", summary["verdict"])
    return summary


def write_evaluation_plots(directory: Path, table: pd.DataFrame, summary: dict,
                           classes: tuple[str, ...]) -> None:
    """Tidy run tables, confusion tables (first seed), per-class recall, CI bar chart."""
    with atomic_path(directory / "confusion", may_hold=ANYTHING) as tmp:  # one file per variant, none stale
        tmp.mkdir()
        for _, r in table[table["seed"] == table["seed"].min()].iterrows():
            pd.DataFrame({"actual": [classes[i] for i in r["y_true"]],
                          "predicted": [classes[i] for i in r["y_pred"]]}
                         ).to_csv(tmp / f"{_file_name(r['variant'])}.csv", index=False)
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


def _file_name(variant: str) -> str:
    """A variant as a portable file name: real+synthetic*0.1+classic -> real_synthetic-w0.1_classic."""
    return variant.replace("+", "_").replace("*", "-w")


def _write_report(path: Path, plots: Path, summary: dict, train: D.ImageSet, fake, *,
                  warnings: list[str] = ()) -> None:
    """``reports/evaluate.md`` and the per-class sample grid (real | synthetic) beside it."""
    grid = path.with_name("samples.png")
    save_png(grid, class_grid((train.images, train.labels), fake, len(train.classes)))
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731 - links relative to the report
    figures = {"balanced accuracy and minority recall, 95 % CI": rel(plots / "balanced_accuracy.png"),
               "per-class recall": rel(plots / "per_class_recall.png"),
               _grid_caption(train.classes, fake): grid.name}
    counts = dict(zip(train.classes, train.counts().tolist()))
    minority = [train.classes[i] for i in D.minority_classes(train.counts())]
    with atomic_path(path) as tmp:
        tmp.write_text(markdown_report(summary, counts=counts, minority=minority, figures=figures,
                                       notes=[*warnings, *_settings_notes(summary),
                                              *synthetic_only_notes(summary, train, fake)]))


def _grid_caption(classes: tuple[str, ...], fake) -> str:
    """What the sample grid's rows are (it has no labels of its own) and which are blank."""
    rows = (", ".join(classes) if len(classes) <= 20 else "in the order of classes.json")
    caption = f"Samples, one row per class from the top ({rows}): real train images left"
    if fake is None:
        return caption
    none = [name for c, name in enumerate(classes) if not (fake[1] == c).any()]
    blank = f"; none was drawn of {', '.join(none)} (blank)" if none else ""
    return f"{caption}, synthetic right{blank}"


def _chance_warning(summary: dict, num_classes: int) -> str | None:
    """When even the best variant is near chance, no comparison below means much."""
    best = max(m["balanced_accuracy"]["mean"] for m in summary["variants"].values())
    if not D.near_chance(best, num_classes):
        return None
    return (f"**Every variant is near chance** (the best balanced accuracy {best:.3f}; chance "
            f"{1 / num_classes:.3f} for {num_classes} classes): the classifiers learned too little "
            "from these data at these settings for the differences, the verdict or the "
            "recommendation to mean much. Raise evaluate.epochs, or add images.")


def _settings_notes(summary: dict) -> list[str]:
    """What the report's rows depend on beyond their names: the classic policy, the weight."""
    notes = []
    if policy := summary.get("classic_policy"):
        notes.append(f"The `classic` part augments with albumentations policy `{policy}` "
                     "(evaluate.classic).")
    weighted = [v for v in summary["variants"] if "*" in v]
    if weighted:
        notes.append(f"{', '.join(f'`{v}`' for v in weighted)}: `synthetic*W` draws a synthetic "
                     "image W times as often as a real one; the prior max/min and the "
                     "prior-based parts use the class mass so drawn.")
    for v, c in summary.get("chosen_on_val", {}).items():
        parts = variant_parts(v)
        picks = ([f"classic `{c['classic']}`"] if "classic" in parts else []) + (
            [f"synthetic weight {c['synthetic_weight']:g}"] if "*auto" in v else [])
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


def synthetic_only_notes(summary: dict, train: D.ImageSet, fake) -> list[str]:
    """A caveat for variants that train on synthetic samples alone when the synthetic set only
    tops classes up: a class with no samples there is unlearnable, so the row is no measure
    of sample quality."""
    only = [v for v in summary["variants"] if "synthetic" in variant_parts(v)
            and "real" not in variant_parts(v)]
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
