"""The evaluate stage's statistics: what a sceptical reviewer asks of a with/without claim.

Every variant is trained once per paired seed (same seed → same split, init, batch order), so
variants are compared by their per-seed differences: mean difference, a 95 % t-interval and a
paired t-test p-value, against ``real``, against ``real+oversample`` (the same class balance from
repeated real images: what the GAN's images add beyond rebalancing) and against the best variant
on val that uses no GAN samples (any of them: oversampling, classic augmentation, the long-tail
losses and post-hoc rule). The intervals are over classifier seeds, for one GAN, one draw of
its samples and one test split.
Intervals are t-intervals clipped to what the quantity can be: [0, 1] for a score, [−1, 1]
for a difference of two scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .config import variant_parts
from .data import minority_classes

SCORES = ("balanced_accuracy", "minority_recall", "accuracy", "macro_f1")
LEVEL = 0.95
SCORE_RANGE, DIFF_RANGE = (0.0, 1.0), (-1.0, 1.0)
INTERVAL = "95 % t-interval over seeds, clipped to [0, 1] (differences: [−1, 1])"


def mean_ci(values, bounds: tuple[float, float] = SCORE_RANGE) -> dict:
    """Mean and 95 % t-interval clipped to ``bounds``; with one value the interval is
    undefined (None)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "lo": None, "hi": None}
    half = float(stats.t.ppf((1 + LEVEL) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": mean, "lo": max(mean - half, bounds[0]), "hi": min(mean + half, bounds[1])}


def paired(a, b) -> dict:
    """``a − b`` per seed: mean, 95 % CI and the two-sided paired t-test p-value. The same
    non-zero difference on every seed has no spread to build a CI or a p-value from: None for
    both, as for one seed (identical runs: the interval [0, 0], p = 1)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    out = mean_ci(diff, DIFF_RANGE)
    p = None
    if len(diff) > 1 and diff.std() > 0:
        p = float(stats.ttest_rel(a, b).pvalue)
    elif len(diff) > 1 and diff.mean() == 0:
        p = 1.0
    elif len(diff) > 1:
        out = {**out, "lo": None, "hi": None}
    return {**out, "p": p, "n": len(diff)}


def runs_table(runs: list[dict], counts: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per (variant, seed) with the scores, incl. mean recall of the minority classes."""
    minority = [classes[i] for i in minority_classes(counts)]
    table = pd.DataFrame(runs)
    table["minority_recall"] = [float(np.mean([r["per_class_recall"][c] for c in minority]))
                                for r in runs]
    return table


def uses_gan(variant: str) -> bool:
    """Whether ``variant`` (or ``variant@tag``, a benchmark's name) trains on GAN samples."""
    return "synthetic" in variant_parts(variant.split("@")[0])


def best_baseline(table: pd.DataFrame) -> str | None:
    """The variant without synthetic samples (whatever its other parts: oversampling, classic,
    a long-tail loss, post-hoc adjustment) with the highest mean *val* balanced accuracy (ties:
    the earlier in the grid): chosen as :func:`recommend` chooses, before test is looked at."""
    plain = table[~table["variant"].map(uses_gan)]
    if plain.empty:
        return None
    return recommend(plain.groupby("variant", sort=False)["val_balanced_accuracy"].mean().to_dict())


def recommend(val: dict[str, float]) -> str:
    """The variant to deploy: the highest mean *val* balanced accuracy (ties: the earlier in
    the grid). The choice is made before the test set is looked at, so its test score is an
    unbiased estimate, unlike the highest test score of many variants."""
    return max(val, key=val.get)


def summarize(table: pd.DataFrame) -> dict:
    """Per variant: mean and CI of every score; per GAN variant: paired differences."""
    by = {v: g.sort_values("seed") for v, g in table.groupby("variant", sort=False)}
    summary = {"variants": {v: {s: _rounded(mean_ci(g[s])) for s in SCORES}
                            for v, g in by.items()},
               "n_train": {v: int(g["n_train"].mean()) for v, g in by.items()},
               "prior_ratio": {v: round(float(g["prior_ratio"].mean()), 4)
                               for v, g in by.items()},
               "tau": {v: g["tau"].tolist() for v, g in by.items()
                       if "tau" in g and g["tau"].notna().all()},
               "seconds": {v: round(float(g["seconds"].mean()), 2) for v, g in by.items()},
               "steps_per_epoch": {v: int(g["steps_per_epoch"].mean()) for v, g in by.items()},
               "seeds": sorted(table["seed"].unique().tolist()),
               "val": {v: round(float(g["val_balanced_accuracy"].mean()), 6)
                       for v, g in by.items()},
               "baseline": best_baseline(table), "vs_real": {}, "vs_oversample": {},
               "vs_baseline": {}}
    summary["recommended"] = recommend(summary["val"])
    for v, g in by.items():
        for ref, key in (("real", "vs_real"), ("real+oversample", "vs_oversample"),
                         (summary["baseline"], "vs_baseline")):
            if ref in by and v != ref and (key == "vs_real" or uses_gan(v)):
                summary[key][v] = {s: _rounded(paired(g[s].values, by[ref][s].values))
                                   for s in ("balanced_accuracy", "minority_recall")}
    summary["verdict"] = verdict(summary)
    return summary


def _rounded(d: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def _gan_variant(summary: dict) -> str | None:
    """The GAN variant the verdict is about: real+synthetic, else the first one with real."""
    names = [v for v in summary["variants"] if uses_gan(v) and "real" in variant_parts(v)]
    return "real+synthetic" if "real+synthetic" in names else (names[0] if names else None)


def _effect(d: dict) -> str:
    if d["lo"] is None:
        why = ("one seed" if d.get("n", 1) == 1 else
               f"the same on all {d['n']} seeds, no spread")
        return f"changed balanced accuracy by {d['mean']:+.4f} ({why}: no CI or p-value)"
    stat = f"(95 % CI {d['lo']:+.4f} to {d['hi']:+.4f}, paired t-test p = {d['p']:.3g})"
    if d["lo"] > 0 or d["hi"] < 0:
        word = "improved" if d["lo"] > 0 else "lowered"
        return f"{word} balanced accuracy by {abs(d['mean']):.4f} {stat}"
    return f"did not significantly change balanced accuracy: {d['mean']:+.4f} {stat}"


def verdict(summary: dict) -> str:
    """One sentence: did the GAN samples help, against real, against oversampling (the same
    balance without a GAN) and against the best non-GAN baseline? Then the recommendation."""
    v = _gan_variant(summary)
    if v is None:
        return ("No variant trains on real and synthetic images together: nothing measures "
                "what the samples add. " + best_overall(summary))
    claims = [f"{_effect(summary['vs_real'][v]['balanced_accuracy'])} over real"
              ] if v in summary["vs_real"] else []
    if v in summary["vs_oversample"] and summary["baseline"] != "real+oversample":
        claims.append(f"{_effect(summary['vs_oversample'][v]['balanced_accuracy'])} against "
                      "real+oversample (the same class balance from repeated real images)")
    if v in summary["vs_baseline"] and summary["baseline"] != "real":
        claims.append(f"{_effect(summary['vs_baseline'][v]['balanced_accuracy'])} against the "
                      f"best non-GAN baseline on val ({summary['baseline']})")
    if not claims:
        return (f"Synthetic samples ({v}): no variant without them ran to compare with. "
                + best_overall(summary))
    n = len(summary["seeds"])
    return (f"Synthetic samples ({v}) {'; '.join(claims)} ({n} paired "
            f"seed{'s' if n > 1 else ''}). " + best_overall(summary))


def best_overall(summary: dict) -> str:
    """Two sentences at most: the variant recommended on val (its test score, whether it is a
    GAN variant), and the variant with the highest mean test score where that is another."""
    means = {v: s["balanced_accuracy"]["mean"] for v, s in summary["variants"].items()}
    rec, best = summary["recommended"], max(means, key=means.get)
    text = (f"Recommended, chosen on val: {rec} (val {summary['val'][rec]:.4f}, test "
            f"{means[rec]:.4f}), {_kind(rec)}.")
    against = summary["vs_baseline"].get(rec, {}).get("balanced_accuracy")
    if against is not None:  # a GAN variant: does it beat what needs no GAN, on test?
        level = against["lo"] is None or against["lo"] <= 0 <= against["hi"]
        text += (f" On test it {_effect(against)} against {summary['baseline']}"
                 + (", which needs no GAN." if level else "."))
    if best != rec:
        text += f" Highest on test: {best} ({means[best]:.4f}), {_kind(best)}."
    return text


def _kind(variant: str) -> str:
    return "a GAN variant" if uses_gan(variant) else "not a GAN variant"


COMPARISONS = ("vs_real", "vs_oversample", "vs_baseline")


def metrics_json(summary: dict) -> dict:
    """Flat keys for ``dvc metrics show``: ``<variant>.<score>[_lo|_hi]``, ``vs_real:<v>…``,
    each variant's ``prior_ratio`` and (posthoc) ``tau_mean``; no timings (they vary)."""
    out: dict = {"seeds": len(summary["seeds"]), "baseline": summary["baseline"],
                 "recommended": summary["recommended"]}
    for v, scores in summary["variants"].items():
        out[v] = {f"{s}{suffix}": d[k] for s, d in scores.items()
                  for k, suffix in (("mean", ""), ("lo", "_lo"), ("hi", "_hi"))
                  if d[k] is not None}
        out[v]["val_balanced_accuracy"] = summary["val"][v]
        out[v]["prior_ratio"] = summary["prior_ratio"][v]
        if v in summary["tau"]:
            out[v]["tau_mean"] = round(float(np.mean(summary["tau"][v])), 4)
    for key in COMPARISONS:
        for v, scores in summary[key].items():
            out[f"{key}:{v}"] = {f"{s}{suffix}": d[k] for s, d in scores.items()
                                 for k, suffix in (("mean", ""), ("lo", "_lo"), ("hi", "_hi"),
                                                   ("p", "_p")) if d[k] is not None}
    if "classic_policy" in summary:
        out["classic_policy"] = summary["classic_policy"]
    for v, chosen in summary.get("chosen_on_val", {}).items():
        out[f"chosen:{v}"] = {k: chosen[k] for k in ("classic", "synthetic_weight")}
    out["verdict"] = summary["verdict"]
    return out


def summary_table(summary: dict) -> pd.DataFrame:
    """Tidy: one row per variant with balanced accuracy / minority recall, CIs, paired gains."""
    rows = []
    for v, scores in summary["variants"].items():
        row = {"variant": v}
        for s in ("balanced_accuracy", "minority_recall"):
            row.update({s: scores[s]["mean"], f"{s}_lo": scores[s]["lo"],
                        f"{s}_hi": scores[s]["hi"]})
        for key in COMPARISONS:
            d = summary[key].get(v, {}).get("balanced_accuracy")
            row.update({f"{key}": d and d["mean"], f"{key}_lo": d and d["lo"],
                        f"{key}_hi": d and d["hi"], f"{key}_p": d and d["p"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(d: dict | None) -> str:
    if not d:
        return "—"
    ci = "" if d["lo"] is None else f" [{d['lo']:.4f}, {d['hi']:.4f}]"
    p = "" if d.get("p") is None else f", p = {d['p']:.3g}"
    return f"{d['mean']:+.4f}{ci}{p}" if "p" in d else f"{d['mean']:.4f}{ci}"


def _steps_sentence(steps: dict[str, int]) -> str:
    """Say whether the variants had equal training budgets (evaluate.equal_steps)."""
    if len(set(steps.values())) == 1:
        return ("Every variant trains the same optimizer steps per epoch, so a smaller set is "
                "passed over more than once. ")
    return ("Each epoch is one pass over a variant's own set (`evaluate.equal_steps: false`): "
            "smaller sets get fewer optimizer steps, which alone can lower their scores. ")


def _baseline_sentence(baseline: str | None) -> str:
    if baseline is None:
        return "No non-GAN variant ran (evaluate.variants), so none is compared against."
    return f"Best non-GAN baseline (the highest on val): `{baseline}`."


def markdown_report(summary: dict, *, counts: dict[str, int], minority: list[str],
                    figures: dict[str, str], notes: list[str] = ()) -> str:
    """``reports/evaluate.md``: verdict, table with CIs and paired differences, ``notes``
    (caveats, one paragraph each), figures (``{caption: path}``)."""
    lines = ["# Does augmentation help? Evaluation report", "", f"**{summary['verdict']}**", "",
             f"Train images per class: {', '.join(f'{c} {n}' for c, n in counts.items())}. "
             f"Minority classes (bottom 30 % by count): {', '.join(minority)}. "
             f"{_baseline_sentence(summary['baseline'])} Paired seeds: "
             f"{', '.join(map(str, summary['seeds']))}; each run picks its epoch on val and is "
             f"scored once on test. {_steps_sentence(summary['steps_per_epoch'])}"
             "The intervals are over classifier seeds, for this one GAN, its one draw of samples "
             "and this test split: another GAN run can move the GAN rows by more. "
             f"Cells: mean [{INTERVAL}]; Δ: paired difference, t-test p. Prior max/min: the "
             "largest over the smallest class count of the variant's training set (synthetic "
             "images counted W times for `synthetic*W`), the prior its long-tail parts use "
             "(1 = uniform). Val bal. acc.: the mean val score the runs were selected by (the "
             "epoch, and τ or `auto` settings, were chosen on it, so it reads high); the "
             "recommended variant has the highest.", "",
             "| variant | train images | prior max/min | steps per epoch | val bal. acc. "
             "| balanced accuracy | minority recall | Δ bal. acc. vs real "
             "| Δ vs `real+oversample` | Δ vs best non-GAN |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v, scores in summary["variants"].items():
        deltas = [_cell(summary[k].get(v, {}).get("balanced_accuracy")) for k in COMPARISONS]
        lines.append(f"| `{v}` | {summary['n_train'][v]} | {summary['prior_ratio'][v]:.3g} | "
                     f"{summary['steps_per_epoch'][v]} | {summary['val'][v]:.4f} | "
                     f"{_cell(scores['balanced_accuracy'])} | "
                     f"{_cell(scores['minority_recall'])} | {' | '.join(deltas)} |")
    lines += ["", *_tau_lines(summary["tau"])]
    lines += [line for note in notes for line in (note, "")]
    lines += [line for title, path in figures.items() for line in (f"*{title}*", "",
                                                                   f"![{title}]({path})", "")]
    return "\n".join(lines).rstrip("\n") + "\n"


def _tau_lines(taus: dict[str, list[float]]) -> list[str]:
    """One sentence on the post-hoc τ each posthoc variant chose on val, per seed."""
    if not taus:
        return []
    chosen = "; ".join(f"`{v}` {', '.join(f'{t:g}' for t in ts)}" for v, ts in taus.items())
    return [f"Post-hoc τ chosen on val per seed (logits − τ·log prior): {chosen}.", ""]
