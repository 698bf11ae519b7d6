"""Which way of using synthetic samples earns its place? The evaluate stage's variants, screened
on stage outputs that already exist (prepared splits + synthetic folder of a pipeline run).

Each ``--work`` folder is one pipeline run (``prepared/``, ``synthetic/``, as
``benchmarks/evidence.py --upto synthesize --work`` leaves them; its top-level seed is the one
its ``train_config.json`` records, or ``--set seed=S`` for non-GAN variants before the GAN
ran). The evaluate stage (the library function ``dvc repro`` calls) runs there with params.yaml
plus ``--set`` overrides and the variants given; the (run, classifier seed) pairs are pooled as
paired replicates. Prints per variant the mean balanced accuracy [95 % CI] and seconds per fit,
then the best GAN variant against the best non-GAN one (each the highest pooled mean: a choice
made on the test scores, on both sides), every GAN variant against that non-GAN best, and the
variant the report recommends (the best on val), pair by pair, against it.

    python benchmarks/evidence.py --data digits --ratios 100 --set seed=S --upto synthesize \
        --work runs/digits_sS   # S = 0, 1, 2: runs/digits_sS/digits_r100
    python benchmarks/recipes.py --work runs/digits_s0/digits_r100 runs/digits_s1/digits_r100 \\
        --variants real+balanced_softmax real+balanced_softmax+feature_gan --name usage_digits
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from augment import stages
from augment.analysis import mean_ci, paired, uses_gan
from augment.config import load_params, override
from augment.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def run(work: Path, params: dict, tag: str, offset: int = 0) -> pd.DataFrame:
    """The evaluate stage on one pipeline run: one row per (variant, classifier seed); the
    classifier seeds start ``offset`` after the run's seed (more pairs on a run later)."""
    # the run's own top-level seed (its train stage recorded it), for the classifiers too; a
    # run screened on non-GAN variants before its GAN exists takes --set seed=S
    settings = work / "train_config.json"
    if settings.exists():
        params = {**params, "seed": json.loads(settings.read_text())["seed"]}
    elif any(uses_gan(v) for v in params["evaluate"]["variants"]):
        raise SystemExit(f"{work}: no train_config.json; run its GAN first "
                         "(benchmarks/evidence.py --upto synthesize)")
    params = {**params, "seed": params.get("seed", 0) + offset}
    out = work / f"recipes_{tag}"
    start = time.perf_counter()
    summary = stages.evaluate.run(params, data=str(work / "prepared"),
                                  synthetic=str(work / "synthetic"),
                                  metrics=str(out / "evaluate.json"), plots=str(out / "plots"),
                                  report=str(out / "evaluate.md"))
    runs = pd.read_csv(out / "plots" / "runs.csv")
    runs["run"], runs["wall"] = str(work), time.perf_counter() - start
    runs["seconds"] = runs["variant"].map(summary["seconds"])
    return runs


def interval(stat: dict, fmt: str) -> str:
    """``mean [lo, hi]``; one pair has no interval."""
    if stat["lo"] is None:
        return f"{stat['mean']:{fmt}} [one pair]{' ' * 7}"
    return f"{stat['mean']:{fmt}} [{stat['lo']:{fmt}}, {stat['hi']:{fmt}}]"


def compare(table: pd.DataFrame) -> dict:
    """Pooled means and the paired differences against the best non-GAN variant."""
    wide = table.pivot_table(index=["run", "seed"], columns="variant",
                             values="balanced_accuracy").dropna(axis=1)  # in every run
    means = wide.mean().sort_values(ascending=False)
    plain = [v for v in means.index if not uses_gan(v)]
    gan = [v for v in means.index if uses_gan(v)]
    report = {"pairs": len(wide), "variants": {v: {**mean_ci(wide[v]),
                                                   "seconds": float(table[table.variant == v]
                                                                    ["seconds"].mean())}
                                               for v in means.index}}
    if plain:
        base = plain[0]
        report["best_non_gan"] = base
        report["vs_best_non_gan"] = {v: paired(wide[v], wide[base]) for v in gan}
        report["best_gan"] = gan[0] if gan else None
    if "val_balanced_accuracy" in table:
        report["chosen_on_val"] = chosen_on_val(table, wide, plain)
    return report


def chosen_on_val(table: pd.DataFrame, wide: pd.DataFrame, plain: list[str]) -> dict:
    """The report's recommendation, pair by pair: the variant with the highest val score (as a
    run with one classifier seed picks it), its test score pooled and how often it is a GAN
    variant; paired against the best non-GAN variant (``plain[0]``, chosen on test) and
    against the same choice made among the non-GAN variants ``plain`` only (the grid without
    the GAN: the GAN's worth when val decides)."""
    val = table.pivot_table(index=["run", "seed"], columns="variant",
                            values="val_balanced_accuracy")[wide.columns]

    def pick(columns: list[str]) -> tuple[pd.Series, pd.Series]:
        chosen = val[columns].idxmax(axis=1)
        return chosen, pd.Series([wide.at[pair, v] for pair, v in chosen.items()],
                                 index=wide.index)

    chosen, test = pick(list(wide.columns))
    out = {**mean_ci(test), "gan_picks": int(chosen.map(uses_gan).sum()),
           "picks": {str(v): int(n) for v, n in chosen.value_counts().items()}}
    if plain:
        out["vs_best_non_gan"] = paired(test, wide[plain[0]])
        out["vs_non_gan_chosen_on_val"] = paired(test, pick(plain)[1])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", nargs="+", help="pipeline run folders")
    parser.add_argument("--variants", nargs="+",
                        help="the variants to run; with --combine, the ones to pool")
    parser.add_argument("--combine", nargs="+", metavar="NAME",
                        help="only pool the rows of results/<NAME>.json (runs screened apart)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="classifier seeds from the run's seed + this (pairs added later)")
    parser.add_argument("--tag", default="",
                        help="name every variant <variant>@TAG (runs under other --set "
                             "settings, pooled beside the defaults with --combine)")
    parser.add_argument("--untag", action="append", default=[], metavar="TAG",
                        help="with --combine: pool <variant>@TAG as <variant> (rows run under a "
                             "--set that the other parts ran under too)")
    args = parser.parse_args(argv)

    if args.combine:
        parts = [json.loads((Path(args.out) / f"{n}.json").read_text()) for n in args.combine]
        table = pd.DataFrame([r for p in parts for r in p["runs"]])
        for tag in args.untag:
            table["variant"] = table["variant"].str.removesuffix(f"@{tag}")
        if args.variants:  # pool these only
            table = table[table["variant"].isin(args.variants)]
        report = {"combined_from": args.combine, **compare(table), "runs": table.to_dict("records")}
    else:
        params = override(load_params(ROOT / "params.yaml"), args.set)
        params["evaluate"]["variants"] = list(args.variants)
        table = pd.concat([run(Path(w), params, args.name, args.seed_offset) for w in args.work],
                          ignore_index=True).drop(columns=["wall"])
        if args.tag:
            table["variant"] = table["variant"] + f"@{args.tag}"
        report = {"work": [Path(w).name for w in args.work], "overrides": args.set,
                  **compare(table), "runs": table.to_dict("records")}
    print(f"{'variant':>44}  bal.acc [95% CI]          s/fit   Δ vs best non-GAN [CI]")
    for v, m in report["variants"].items():
        d = report.get("vs_best_non_gan", {}).get(v)
        print(f"{v:>44}  {interval(m, '.4f')}  {m['seconds']:5.1f}   "
              f"{interval(d, '+.4f') if d else ''}")
    print(f"best non-GAN: {report.get('best_non_gan')}; best GAN: {report.get('best_gan')} "
          f"({report['pairs']} paired (run, seed) replicates)")
    if "chosen_on_val" in report:
        c = report["chosen_on_val"]
        d = c.get("vs_best_non_gan")
        print(f"{'chosen on val, pair by pair':>44}  {interval(c, '.4f')}         "
              f"{interval(d, '+.4f') if d else ''}  (a GAN variant {c['gan_picks']}/"
              f"{report['pairs']})")
        if d:
            print(f"{'− the non-GAN variant chosen on val':>44}  "
                  f"{interval(c['vs_non_gan_chosen_on_val'], '+.4f')}")
    write_json(Path(args.out) / f"{args.name}.json", report)


if __name__ == "__main__":
    main()
