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
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from augment import stages
from augment.analysis import paired
from augment.config import load_params
from augment.io import write_json

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"digits": {"source": "digits"},
           "mnist": {"source": "mnist", "root": str(ROOT.parent / "shared" / "data")}}


def override(params: dict, assignments: list[str]) -> dict:
    """``section.key=value`` or ``seed=value`` (value parsed as YAML), like ``dvc exp run -S``."""
    params = copy.deepcopy(params)
    for item in assignments:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if name:
            params[section][name] = yaml.safe_load(value)
        else:  # a top-level key: the shared seed
            params[section] = yaml.safe_load(value)
    return params


def run_pipeline(params: dict, work: Path) -> tuple[dict, dict]:
    """All five stages into ``work``; returns the evaluate summary and seconds per stage."""
    d = lambda name: str(work / name)  # noqa: E731
    calls = {
        "prepare": lambda: stages.prepare(params, out=d("prepared"), metrics=d("prepare.json")),
        "judge": lambda: stages.judge(params, data=d("prepared"), out=d("judge.pt"),
                                      metrics=d("judge.json")),
        "train": lambda: stages.train(params, data=d("prepared"), out=d("gan.pt"),
                                      samples=d("samples.png"), logdir=d("dvclive"),
                                      judge=d("judge.pt"), quality=d("quality.json"),
                                      settings=d("train_config.json")),
        "synthesize": lambda: stages.synthesize(params, data=d("prepared"), model=d("gan.pt"),
                                                judge=d("judge.pt"), out=d("synthetic"),
                                                metrics=d("synthesize.json")),
        "evaluate": lambda: stages.evaluate(params, data=d("prepared"), synthetic=d("synthetic"),
                                            metrics=d("evaluate.json"), plots=d("plots"),
                                            report=d("reports/evaluate.md")),
    }
    seconds, results = {}, {}
    for name, call in calls.items():
        start = time.perf_counter()
        results[name] = call()
        seconds[name] = round(time.perf_counter() - start, 1)
    return results, seconds


def rows_of(data: str, ratio: float, results: dict) -> list[dict]:
    """One table row per variant."""
    summary = results["evaluate"]
    rows = []
    for v, s in summary["variants"].items():
        vs_real = summary["vs_real"].get(v, {}).get("balanced_accuracy")
        vs_base = summary["vs_baseline"].get(v, {}).get("balanced_accuracy")
        rows.append({"data": data, "ratio": ratio, "variant": v,
                     "bal_acc": s["balanced_accuracy"]["mean"],
                     "bal_acc_ci": [s["balanced_accuracy"]["lo"], s["balanced_accuracy"]["hi"]],
                     "minority_recall": s["minority_recall"]["mean"],
                     "minority_ci": [s["minority_recall"]["lo"], s["minority_recall"]["hi"]],
                     "vs_real": vs_real, "vs_baseline": vs_base})
    return rows


def _fmt(row: dict) -> str:
    def delta(d):
        return "" if not d else f"{d['mean']:+.4f} [{d['lo']:+.4f},{d['hi']:+.4f}] p={d['p']:.2g}"
    lo, hi = row["bal_acc_ci"]
    return (f"{row['data']:>6} {row['ratio']:>5g} {row['variant']:>24}  {row['bal_acc']:.4f} "
            f"[{lo:.4f},{hi:.4f}]  {row['minority_recall']:.4f}  {delta(row['vs_real']):>34}  "
            f"{delta(row['vs_baseline']):>34}")


def markdown(report: dict) -> str:
    """The results table (benchmarks/RESULTS.md): one row per ratio × variant."""
    def ci(lo, hi):
        return "" if lo is None else f" [{lo:.3f}, {hi:.3f}]"

    def delta(d):
        return "—" if not d else f"{d['mean']:+.3f}{ci(d['lo'], d['hi'])}, p={d['p']:.2g}"

    lines = ["| ratio | variant | balanced acc. [95 % CI] | minority recall | Δ vs real | "
             "Δ vs best non-GAN |", "|---|---|---|---|---|---|"]
    for run in report["runs"]:
        for r in run["rows"]:
            lines.append(f"| {r['ratio']:g} | `{r['variant']}` | {r['bal_acc']:.3f}"
                         f"{ci(*r['bal_acc_ci'])} | {r['minority_recall']:.3f} | "
                         f"{delta(r['vs_real'])} | {delta(r['vs_baseline'])} |")
    return "\n".join(lines)


# (a, b): is a better than b? The GAN's contribution, each against its non-GAN counterpart.
COMPARISONS = (("real+synthetic", "real"), ("real+synthetic", "real+oversample"),
               ("real+synthetic+classic", "real+oversample+classic"), ("synthetic", "real"))


def combine(names: list[str], out_dir: Path) -> dict:
    """Per ratio: each variant's balanced accuracy over the runs, and COMPARISONS as paired
    differences over runs (mean, 95 % t-interval, p, how many runs a beat b)."""
    runs = [run for name in names
            for run in json.loads((out_dir / f"{name}.json").read_text())["runs"]]
    report = {"combined_from": names, "ratios": []}
    for ratio in sorted({run["ratio"] for run in runs}):
        acc = pd.DataFrame([{r["variant"]: r["bal_acc"] for r in run["rows"]}
                            for run in runs if run["ratio"] == ratio])
        rows = [{"a": a, "b": b, **paired(acc[a], acc[b]), "wins": int((acc[a] > acc[b]).sum()),
                 "runs": len(acc)} for a, b in COMPARISONS if {a, b} <= set(acc)]
        report["ratios"].append({"ratio": ratio, "runs": len(acc),
                                 "bal_acc": acc.agg(["mean", "std"]).to_dict(),
                                 "comparisons": rows})
        print(f"ratio {ratio:g}, {len(acc)} runs: balanced accuracy mean ± std over runs")
        print(acc.agg(["mean", "std"]).T.to_string(float_format="{:.4f}".format))
        print(pd.DataFrame(rows).to_string(index=False, float_format="{:+.4f}".format))
    return report


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
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default=None)
    parser.add_argument("--markdown", metavar="JSON", help="only print the table of a result")
    parser.add_argument("--combine", nargs="+", metavar="NAME",
                        help="only combine results/<NAME>.json runs of other seeds (--name)")
    args = parser.parse_args(argv)
    if args.markdown:
        return print(markdown(json.loads(Path(args.markdown).read_text())))
    if args.combine:
        report = combine(args.combine, Path(args.out))
        return write_json(Path(args.out) / f"{args.name or 'evidence_combined'}.json", report)

    work = Path(args.work or tempfile.mkdtemp(prefix="augment-evidence-"))
    print(f"stage outputs under {work}")
    base = override(load_params(ROOT / "params.yaml"), args.set)
    base["prepare"].update(SOURCES[args.data])
    report = {"data": args.data, "overrides": args.set, "runs": []}
    print(f"{'data':>6} {'ratio':>5} {'variant':>24}  bal.acc [95% CI]         minority  "
          f"{'Δ vs real [CI] p':>34}  {'Δ vs best non-GAN [CI] p':>34}")
    for ratio in args.ratios:
        params = copy.deepcopy(base)
        params["prepare"]["imbalance_ratio"] = ratio
        if ratio == 1:
            params["synthesize"]["multiple"] = args.balanced_multiple
        results, seconds = run_pipeline(params, work / f"{args.data}_r{ratio:g}")
        rows = rows_of(args.data, ratio, results)
        for row in rows:
            print(_fmt(row), flush=True)
        print(f"  ratio {ratio:g}: {results['evaluate']['verdict']}  seconds {seconds}", flush=True)
        report["runs"].append({"ratio": ratio, "seconds": seconds, "rows": rows,
                               "train_counts": results["prepare"]["train_counts"],
                               "synthetic": results["synthesize"]["total"],
                               "quality": results["train"].get("quality"),
                               "verdict": results["evaluate"]["verdict"],
                               "baseline": results["evaluate"]["baseline"]})
        out = Path(args.out) / f"{args.name or 'evidence_' + args.data}.json"
        write_json(out, report)  # after every ratio: partial runs survive
    print(markdown(report))


if __name__ == "__main__":
    main()
