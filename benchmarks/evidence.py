"""Does augmentation help on long-tailed data? The evaluate stage's experiment, per imbalance ratio.

For each data set and imbalance ratio, runs the real pipeline stages (prepare → judge → train →
synthesize → evaluate, the library functions ``dvc repro`` calls, without Prefect) with
params.yaml plus the overrides given here, and collects the evaluate stage's paired-seed
summary: per variant mean balanced accuracy / minority recall with 95 % CIs, paired differences
against ``real`` and the best non-GAN baseline, and the verdict. Prints a table, writes json.

    python benchmarks/evidence.py --data digits --ratios 1 10 100
    python benchmarks/evidence.py --data mnist --ratios 1 10 100 --set train.preset=classic \\
        --set train.epochs=60 --set evaluate.width=16 --set evaluate.epochs=8

One run's intervals pair the classifier seeds around one split and one GAN. ``--combine`` takes
runs of other top-level seeds (``--set seed=S``: another split, GAN and classifiers) as
replicates and compares variants by their per-run differences, so the GAN's own run-to-run
spread is inside the interval:

    python benchmarks/evidence.py --combine ev_seed0 ev_seed1 ev_seed2 --name ev_combined

Files of the same top-level seed are merged into one run (same split, so the variants pair);
``--tag T`` renames a file's GAN variants ``<variant>@T``, so runs under other synthesize
settings (e.g. ``--set synthesize.minority_only=true --tag minority``) sit beside the default
fill. Besides fixed comparisons, combine reports the best GAN variant against the best non-GAN
one (each the highest mean over runs: a choice made on the same test scores, on both sides).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from augment import stages
from augment.analysis import paired, uses_gan
from augment.config import load_params, override
from augment.io import write_json

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"digits": {"source": "digits"},
           "mnist": {"source": "mnist", "root": str(ROOT.parent / "shared" / "data")},
           # real CIFAR-10 photos, split layout: train/<class>/*.jpg and the official test/
           "cifar10": {"source": "folder", "root": str(ROOT.parent / "shared" / "data" / "cifar10")}}


def run_pipeline(params: dict, work: Path, upto: str = "evaluate") -> tuple[dict, dict]:
    """The stages into ``work``, in order, through ``upto``; returns each stage's result and
    seconds."""
    d = lambda name: str(work / name)  # noqa: E731
    calls = {
        "prepare": lambda: stages.prepare.run(params, out=d("prepared"), metrics=d("prepare.json")),
        "judge": lambda: stages.judge.run(params, data=d("prepared"), out=d("judge.pt"),
                                          metrics=d("judge.json")),
        "train": lambda: stages.train.run(params, data=d("prepared"), out=d("gan.pt"),
                                          samples=d("samples.png"), logdir=d("dvclive"),
                                          judge=d("judge.pt"), quality=d("quality.json"),
                                          settings=d("train_config.json")),
        "synthesize": lambda: stages.synthesize.run(params, data=d("prepared"), model=d("gan.pt"),
                                                    judge=d("judge.pt"), out=d("synthetic"),
                                                    metrics=d("synthesize.json")),
        "evaluate": lambda: stages.evaluate.run(params, data=d("prepared"), synthetic=d("synthetic"),
                                                metrics=d("evaluate.json"), plots=d("plots"),
                                                report=d("reports/evaluate.md")),
    }
    seconds, results = {}, {}
    for name, call in calls.items():
        start = time.perf_counter()
        results[name] = call()
        seconds[name] = round(time.perf_counter() - start, 1)
        if name == upto:
            break
    return results, seconds


def held_out_quality(work: Path, seed: int) -> dict:
    """The kept generator's per-class FID and diversity against the **val** split (balanced,
    never trained on), drawn one sample per val image: for a tail class with 1-5 train images
    the train stage's own report (against train) cannot say whether it learnt the class or
    copies its few images. Minority classes: the bottom 30 % by train count."""
    from augment.checkpoint import load_generator
    from augment.data import load_prepared, minority_classes
    from augment.fidelity import fidelity_report
    from augment.judge import load_judge
    from augment.synthesis import synthesize

    splits = load_prepared(work / "prepared", splits=("train", "val"))
    judge, _ = load_judge(work / "judge.pt", "cpu")
    generator, _ = load_generator(work / "gan.pt", "cpu", accept_failed=True)
    val = splits["val"]
    images, labels = synthesize(generator, dict(enumerate(val.counts().tolist())),
                                seed=seed + 7, device="cpu")
    report = fidelity_report(judge, val, images.numpy(), labels.numpy())
    tail = [val.classes[i] for i in minority_classes(splits["train"].counts())]
    return {"fid_per_class": report["fid_per_class"], "diversity": report["diversity"],
            "tail_classes": tail, "tail_diversity_min": min(report["diversity"][c] for c in tail),
            "tail_fid_mean": round(sum(report["fid_per_class"][c] for c in tail) / len(tail), 4),
            "judge_accuracy": report["judge_accuracy"]}


def tagged(variant: str, tag: str) -> str:
    """``variant@tag`` for a GAN variant (its samples depend on the synthesize settings)."""
    return f"{variant}@{tag}" if tag and uses_gan(variant) else variant


def rows_of(data: str, ratio: float, results: dict, tag: str = "") -> list[dict]:
    """One table row per variant: scores, prior ratio, mean fit seconds, posthoc τ per seed."""
    summary = results["evaluate"]
    rows = []
    for v, s in summary["variants"].items():
        vs_real = summary["vs_real"].get(v, {}).get("balanced_accuracy")
        vs_base = summary["vs_baseline"].get(v, {}).get("balanced_accuracy")
        rows.append({"data": data, "ratio": ratio, "variant": tagged(v, tag),
                     "prior_ratio": summary["prior_ratio"][v],
                     "fit_seconds": summary["seconds"][v], "tau": summary["tau"].get(v),
                     "bal_acc": s["balanced_accuracy"]["mean"],
                     "bal_acc_ci": [s["balanced_accuracy"]["lo"], s["balanced_accuracy"]["hi"]],
                     "minority_recall": s["minority_recall"]["mean"],
                     "minority_ci": [s["minority_recall"]["lo"], s["minority_recall"]["hi"]],
                     "vs_real": vs_real, "vs_baseline": vs_base})
    return rows


def _fmt(row: dict) -> str:
    def ci(lo, hi, sign=""):
        return "" if lo is None else f" [{lo:{sign}.4f},{hi:{sign}.4f}]"

    def delta(d):
        return "" if not d else f"{d['mean']:+.4f}{ci(d['lo'], d['hi'], '+')} p={d['p'] or 0:.2g}"
    return (f"{row['data']:>6} {row['ratio']:>5g} {row['variant']:>24}  {row['bal_acc']:.4f}"
            f"{ci(*row['bal_acc_ci'])}  {row['minority_recall']:.4f}  {delta(row['vs_real']):>34}  "
            f"{delta(row['vs_baseline']):>34}  prior {row['prior_ratio']:g}  "
            f"{row['fit_seconds']:.1f} s/fit")


def markdown(report: dict) -> str:
    """The results table (benchmarks/RESULTS.md): one row per ratio × variant."""
    def ci(lo, hi):
        return "" if lo is None else f" [{lo:.3f}, {hi:.3f}]"

    def delta(d):
        if not d:
            return "—"
        return f"{d['mean']:+.3f}{ci(d['lo'], d['hi'])}" + ("" if d["p"] is None
                                                           else f", p={d['p']:.2g}")

    lines = ["| ratio | variant | balanced acc. [95 % CI] | minority recall | Δ vs real | "
             "Δ vs best non-GAN |", "|---|---|---|---|---|---|"]
    for run in report["runs"]:
        for r in run["rows"]:
            lines.append(f"| {r['ratio']:g} | `{r['variant']}` | {r['bal_acc']:.3f}"
                         f"{ci(*r['bal_acc_ci'])} | {r['minority_recall']:.3f} | "
                         f"{delta(r['vs_real'])} | {delta(r['vs_baseline'])} |")
    return "\n".join(lines)


# (a, b): is a better than b? The GAN's contribution, each against its non-GAN counterpart,
# and the long-tail losses against the GAN.
COMPARISONS = (("real+synthetic", "real"), ("real+synthetic", "real+oversample"),
               ("real+synthetic+classic", "real+oversample+classic"), ("synthetic", "real"),
               ("real+synthetic", "real+balanced_softmax"), ("real+synthetic", "real+posthoc"),
               ("real+synthetic", "real+drw"), ("real+balanced_softmax", "real+oversample"),
               ("real+synthetic+classic", "real+balanced_softmax+classic"))


def _seed_of(report: dict) -> int | None:
    """The top-level seed a result file ran with (older files: from its ``seed=S`` override)."""
    if "seed" in report:
        return report["seed"]
    seeds = [int(o.partition("=")[2]) for o in report.get("overrides", [])
             if o.startswith("seed=")]
    return seeds[-1] if seeds else None


def merged_runs(reports: list[dict]) -> dict[tuple[float, object], dict[str, dict]]:
    """(ratio, seed) → variant → row, merging files of the same seed (a file without a seed
    is a run of its own). A variant twice in one run keeps its first row."""
    merged: dict = {}
    for i, report in enumerate(reports):
        seed = _seed_of(report)
        for run in report["runs"]:
            rows = merged.setdefault((run["ratio"], f"file{i}" if seed is None else seed), {})
            for r in run["rows"]:
                rows.setdefault(r["variant"], {**r, "gan_seconds": _gan_seconds(run)})
    return merged


def _gan_seconds(run: dict) -> float:
    return run["seconds"].get("train", 0.0) + run["seconds"].get("synthesize", 0.0)


def best_pair(acc: pd.DataFrame) -> tuple[str, str] | None:
    """(best GAN variant, best non-GAN variant) by mean over runs; None without either."""
    mean = acc.mean()
    gan = [v for v in acc if uses_gan(v)]
    plain = [v for v in acc if v not in gan]
    return (mean[gan].idxmax(), mean[plain].idxmax()) if gan and plain else None


def _comparison(acc: pd.DataFrame, a: str, b: str) -> dict:
    return {"a": a, "b": b, **paired(acc[a], acc[b]), "wins": int((acc[a] > acc[b]).sum()),
            "runs": len(acc)}


def combine(names: list[str], out_dir: Path) -> dict:
    """Per ratio: each variant's balanced accuracy over the runs, COMPARISONS and the best GAN
    − best non-GAN variant as paired differences over runs (mean, 95 % t-interval, p, how many
    runs a beat b), each variant's prior ratio and mean fit seconds, the GAN's seconds."""
    merged = merged_runs([json.loads((out_dir / f"{n}.json").read_text()) for n in names])
    report = {"combined_from": names, "ratios": []}
    for ratio in sorted({ratio for ratio, _ in merged}):
        runs = [rows for (r, _), rows in merged.items() if r == ratio]
        acc = pd.DataFrame([{v: row["bal_acc"] for v, row in rows.items()} for rows in runs])
        acc = acc.dropna(axis=1)  # a variant every run has
        rows = [_comparison(acc, a, b) for a, b in COMPARISONS if {a, b} <= set(acc)]
        best = best_pair(acc)
        info = {v: _means(runs, v) for v in acc if "prior_ratio" in runs[0][v]}
        report["ratios"].append({
            "ratio": ratio, "runs": len(acc), "bal_acc": acc.agg(["mean", "std"]).to_dict(),
            "comparisons": rows, "best": best and _comparison(acc, *best), "variants": info,
            "gan_seconds": float(pd.Series([_gan_seconds_of(rs) for rs in runs]).mean())})
        print(f"ratio {ratio:g}, {len(acc)} runs: balanced accuracy mean ± std over runs")
        print(acc.agg(["mean", "std"]).T.to_string(float_format="{:.4f}".format))
        shown = rows + ([report["ratios"][-1]["best"]] if best else [])
        print(pd.DataFrame(shown).to_string(index=False, float_format="{:+.4f}".format))
    return report


def _means(runs: list[dict[str, dict]], variant: str) -> dict:
    """A variant's minority recall, prior ratio and seconds per fit, averaged over runs."""
    keys = ("minority_recall", "prior_ratio", "fit_seconds")
    return {k: float(pd.Series([rows[variant][k] for rows in runs]).mean()) for k in keys}


def combined_markdown(report: dict) -> str:
    """Per ratio of a combined result: one row per variant (mean over runs, paired difference
    to the best non-GAN variant with its 95 % CI over runs), then the comparisons."""
    def diff(d):
        return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]; {d['wins']}/{d['runs']}"

    lines = []
    for r in report["ratios"]:
        best = r["best"]
        lines += [f"Ratio {r['ratio']:g}, {r['runs']} runs; GAN training + synthesis "
                  f"{r['gan_seconds']:.0f} s per run. Best non-GAN: `{best['b']}`.", "",
                  "| variant | prior max/min | s per fit | balanced acc. (sd over runs) | "
                  "minority recall |", "|---|---|---|---|---|"]
        for v, m in r["variants"].items():
            acc = r["bal_acc"][v]
            lines.append(f"| `{v}` | {m['prior_ratio']:.3g} | {m['fit_seconds']:.1f} | "
                         f"{acc['mean']:.3f} ({acc['std']:.3f}) | {m['minority_recall']:.3f} |")
        lines += ["", "| a − b (per-run difference, 95 % CI; runs where a > b) | |", "|---|---|"]
        lines += [f"| `{c['a']}` − `{c['b']}` | {diff(c)} |" for c in r["comparisons"]]
        lines.append(f"| **best GAN − best non-GAN**: `{best['a']}` − `{best['b']}` | "
                     f"**{diff(best)}** |")
        lines.append("")
    return "\n".join(lines)


def _gan_seconds_of(rows: dict[str, dict]) -> float:
    return next(iter(rows.values()))["gan_seconds"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=list(SOURCES), default="digits")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="params override (repeatable), e.g. --set evaluate.seeds=5")
    parser.add_argument("--balanced-multiple", type=float, default=2.0,
                        help="synthesize.multiple at ratio 1 (a balanced set has no gap to fill)")
    parser.add_argument("--work", default=None,
                        help="stage outputs (default: a fresh temp folder, so runs side by "
                             "side cannot overwrite each other's)")
    parser.add_argument("--upto", default="evaluate",
                        choices=["prepare", "judge", "train", "synthesize", "evaluate"],
                        help="stop after this stage (e.g. synthesize: stage outputs for "
                             "benchmarks/recipes.py to screen variants on)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default=None)
    parser.add_argument("--tag", default="",
                        help="name the GAN variants <variant>@TAG (e.g. for another synthesize "
                             "setting, to combine beside the default fill)")
    parser.add_argument("--markdown", metavar="JSON", help="only print the table of a result")
    parser.add_argument("--combine", nargs="+", metavar="NAME",
                        help="only combine results/<NAME>.json runs of other seeds (--name)")
    args = parser.parse_args(argv)
    if args.markdown:
        result = json.loads(Path(args.markdown).read_text())
        return print(combined_markdown(result) if "combined_from" in result else markdown(result))
    if args.combine:
        report = combine(args.combine, Path(args.out))
        return write_json(Path(args.out) / f"{args.name or 'evidence_combined'}.json", report)

    work = Path(args.work or tempfile.mkdtemp(prefix="augment-evidence-"))
    print(f"stage outputs under {work}")
    base = override(load_params(ROOT / "params.yaml"), args.set)
    base["prepare"].update(SOURCES[args.data])
    report = {"data": args.data, "overrides": args.set, "seed": base.get("seed", 0),
              "tag": args.tag, "runs": []}
    print(f"{'data':>6} {'ratio':>5} {'variant':>24}  bal.acc [95% CI]         minority  "
          f"{'Δ vs real [CI] p':>34}  {'Δ vs best non-GAN [CI] p':>34}")
    for ratio in args.ratios:
        params = copy.deepcopy(base)
        params["prepare"]["imbalance_ratio"] = ratio
        if ratio == 1:
            params["synthesize"]["multiple"] = args.balanced_multiple
        results, seconds = run_pipeline(params, work / f"{args.data}_r{ratio:g}", args.upto)
        if args.upto != "evaluate":
            print(f"  ratio {ratio:g}: stages through {args.upto} in {seconds}", flush=True)
            continue
        held_out = held_out_quality(work / f"{args.data}_r{ratio:g}", params.get("seed", 0))
        print(f"  vs val: tail classes {held_out['tail_classes']}: lowest diversity "
              f"{held_out['tail_diversity_min']}, mean FID {held_out['tail_fid_mean']}")
        rows = rows_of(args.data, ratio, results, args.tag)
        for row in rows:
            print(_fmt(row), flush=True)
        print(f"  ratio {ratio:g}: {results['evaluate']['verdict']}  seconds {seconds}", flush=True)
        report["runs"].append({"ratio": ratio, "seconds": seconds, "rows": rows,
                               "train_counts": results["prepare"]["train_counts"],
                               "synthetic": results["synthesize"]["total"],
                               "quality": results["train"].get("quality"),
                               "quality_vs_val": held_out,
                               "verdict": results["evaluate"]["verdict"],
                               "baseline": results["evaluate"]["baseline"]})
        out = Path(args.out) / f"{args.name or 'evidence_' + args.data}.json"
        write_json(out, report)  # after every ratio: partial runs survive
    print(markdown(report))


if __name__ == "__main__":
    main()
