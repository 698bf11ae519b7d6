"""The evaluate stage as an experiment: variants, paired statistics, runners, minority fill."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from augment import analysis, stages
from augment.classic import classic_augment
from augment.config import EvaluateConfig, from_dict
from augment.data import minority_classes
from augment.errors import ConfigError
from augment.data import balanced_index, load_prepared
from augment.errors import DataError
from augment.evaluate import (common_steps, compose, evaluate_variant, prior_ratio, train_size,
                              variant_counts)
from augment.sampling import draw_weights, epoch_order, weighted_order
from conftest import fabricate_images


def test_paired_difference_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.8, 0.02, 7), rng.normal(0.78, 0.02, 7)
    d = analysis.paired(a, b)
    diff = a - b
    half = stats.t.ppf(0.975, 6) * diff.std(ddof=1) / np.sqrt(7)
    assert d["mean"] == pytest.approx(diff.mean())
    assert (d["lo"], d["hi"]) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert d["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert analysis.mean_ci([0.5]) == {"mean": 0.5, "lo": None, "hi": None}
    assert analysis.paired([0.5, 0.6], [0.5, 0.6])["p"] == 1.0


def test_score_intervals_are_clipped_to_0_1_and_differences_to_plus_minus_1():
    """Accuracies 1, 1, 0.98: mean 0.99333, sd 0.011547, t(0.975, 2) = 4.3027 → half-width
    0.028684, so the raw t-interval [0.96465, 1.02202] reaches past 1; the score's stops at 1."""
    ci = analysis.mean_ci([1.0, 1.0, 0.98])
    assert ci["lo"] == pytest.approx(0.96465, abs=1e-5) and ci["hi"] == 1.0
    low = analysis.mean_ci([0.0, 0.0, 0.02])
    assert low["lo"] == 0.0 and low["hi"] == pytest.approx(0.035351, abs=1e-5)
    d = analysis.paired([1.0, 1.0, 1.0], [0.0, 0.0, 0.06])  # differences 1, 1, 0.94
    assert d["hi"] == 1.0 and d["lo"] == pytest.approx(0.98 - 0.086052, abs=1e-5)


def test_minority_classes_are_the_bottom_30_percent():
    assert minority_classes(np.array([50, 3, 20, 3, 9, 40, 1, 60, 70, 80])) == [1, 3, 6]
    assert minority_classes(np.array([5, 1])) == [1]  # ceil(0.3 * 2) = 1


def _table(gain: float, seeds: int = 5, variants=(("real", 0.0), ("real+classic", 0.01))
           ) -> pd.DataFrame:
    """Fabricated runs: real+synthetic = real + gain (+ noise); real+classic = real + 0.01."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.7, seeds)
    rows = []
    for variant, shift in (*variants, ("real+synthetic", gain)):
        for s in range(seeds):
            score = base[s] + shift + rng.normal(0, 0.002)
            rows.append({"variant": variant, "seed": s, "n_train": 100, "steps_per_epoch": 1,
                         "prior_ratio": 1.0 if "synthetic" in variant else 10.0,
                         "seconds": 1.0, "balanced_accuracy": score,
                         "val_balanced_accuracy": score + rng.normal(0, 0.002),
                         "minority_recall": score - 0.2, "accuracy": score, "macro_f1": score})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("gain, word", [(0.05, "improved"), (-0.05, "lowered"),
                                        (0.0, "did not significantly change")])
def test_summary_and_verdict(gain, word):
    summary = analysis.summarize(_table(gain))
    assert summary["baseline"] == "real+classic"
    assert set(summary["vs_real"]) == {"real+classic", "real+synthetic"}
    assert set(summary["vs_baseline"]) == {"real+synthetic"}  # only GAN variants vs baseline
    assert summary["vs_real"]["real+synthetic"]["balanced_accuracy"]["mean"] == pytest.approx(
        gain, abs=0.003)
    assert summary["verdict"].startswith(f"Synthetic samples (real+synthetic) {word}")
    assert "real+classic" in summary["verdict"] and "5 paired seeds" in summary["verdict"]
    flat = analysis.metrics_json(summary)
    assert {"balanced_accuracy", "balanced_accuracy_lo", "balanced_accuracy_hi",
            "balanced_accuracy_p"} <= set(flat["vs_baseline:real+synthetic"])


def test_best_non_gan_baseline_is_chosen_over_the_loss_side_variants_too():
    """real+balanced_softmax (+0.05 over real) beats real+classic (+0.01) and real+posthoc
    (+0.03): it is the baseline every GAN variant is compared with, and the report says which
    τ the posthoc runs chose and each variant's prior ratio."""
    table = _table(0.04, variants=(("real", 0.0), ("real+classic", 0.01),
                                   ("real+balanced_softmax", 0.05), ("real+posthoc", 0.03)))
    table["tau"] = np.where(table["variant"] == "real+posthoc", 1.25, np.nan)
    summary = analysis.summarize(table)
    assert summary["baseline"] == "real+balanced_softmax"
    assert set(summary["vs_baseline"]) == {"real+synthetic"}
    assert summary["vs_baseline"]["real+synthetic"]["balanced_accuracy"]["mean"] == pytest.approx(
        -0.01, abs=0.003)
    assert "against the best non-GAN baseline on val (real+balanced_softmax)" in summary["verdict"]
    assert summary["tau"] == {"real+posthoc": [1.25] * 5}
    flat = analysis.metrics_json(summary)
    assert flat["baseline"] == "real+balanced_softmax" and flat["real+posthoc"]["tau_mean"] == 1.25
    assert flat["real"]["prior_ratio"] == 10.0 and flat["real+synthetic"]["prior_ratio"] == 1.0
    report = analysis.markdown_report(summary, counts={"a": 10, "b": 1}, minority=["b"],
                                      figures={})
    assert "| `real` | 100 | 10 | 1 |" in report and "| `real+synthetic` | 100 | 1 | 1 |" in report
    assert "`real+posthoc` 1.25, 1.25, 1.25, 1.25, 1.25." in report
    assert "clipped to [0, 1]" in report


def test_the_verdict_separates_rebalancing_from_the_gan_and_weighs_the_recommendation():
    """A sceptic's reading: real+synthetic against real+oversample (the same balance without a
    GAN); a recommended GAN variant against the best non-GAN baseline on test, "which needs no
    GAN" when level; the baseline chosen on val, not test."""
    table = _table(0.04, variants=(("real", 0.0), ("real+oversample", 0.03),
                                   ("real+balanced_softmax", 0.045)))
    summary = analysis.summarize(table)
    assert ("against real+oversample (the same class balance from repeated real images)"
            in summary["verdict"])
    assert summary["vs_oversample"]["real+synthetic"]["balanced_accuracy"]["mean"] == \
        pytest.approx(0.01, abs=0.003)
    assert "vs_oversample:real+synthetic" in analysis.metrics_json(summary)
    # the GAN variant is best on val by a hair: recommended, level with the baseline on test
    table.loc[table["variant"] == "real+synthetic", "val_balanced_accuracy"] += 0.02
    table.loc[table["variant"] == "real+synthetic", "balanced_accuracy"] = (
        table.loc[table["variant"] == "real+balanced_softmax", "balanced_accuracy"].values
        + np.random.default_rng(1).normal(0, 0.002, 5))
    summary = analysis.summarize(table)
    assert summary["recommended"] == "real+synthetic"
    assert re.search(r"On test it did not significantly change balanced accuracy: [-+]0\.00\d+ "
                     r".* against real\+balanced_softmax, which needs no GAN\.",
                     summary["verdict"])
    # test favours real+oversample, val real+balanced_softmax: the baseline is val's
    table.loc[table["variant"] == "real+oversample", "balanced_accuracy"] += 0.1
    assert analysis.summarize(table)["baseline"] == "real+balanced_softmax"


def test_a_constant_difference_has_no_ci_and_no_real_variant_still_gets_a_verdict():
    table = _table(0.0, seeds=2, variants=(("real+oversample", 0.0),))
    table.loc[table["variant"] == "real+synthetic", "balanced_accuracy"] = (
        table.loc[table["variant"] == "real+oversample", "balanced_accuracy"].values + 0.01)
    summary = analysis.summarize(table)
    assert ("changed balanced accuracy by +0.0100 (the same on all 2 seeds, no spread: no CI "
            "or p-value) against the best non-GAN baseline on val") in summary["verdict"]
    assert "Recommended, chosen on val" in summary["verdict"]
    only_gan = _table(0.0, seeds=2, variants=())
    assert analysis.summarize(only_gan)["verdict"].startswith(
        "Synthetic samples (real+synthetic): no variant without them ran to compare with.")


def test_oversample_balances_and_keeps_every_image():
    labels = np.array([0] * 9 + [1] * 3 + [2] * 1)
    index = balanced_index(labels, seed=0)
    assert np.bincount(labels[index]).tolist() == [9, 9, 9]
    assert np.array_equal(index[:13], np.arange(13))
    assert np.array_equal(index, balanced_index(labels, seed=0))
    real = fabricate_images([6, 2])
    fake = (np.zeros((4, 1, 8, 8), np.uint8), np.array([1, 1, 1, 1]))
    images, y, is_fake = compose("real+synthetic+oversample", real, fake, seed=0)
    assert np.bincount(y).tolist() == [6, 6] and len(images) == 12
    assert is_fake.sum() >= 4 and not is_fake[y == 0].any()  # flags follow the resampling
    assert np.bincount(compose("synthetic", real, fake)[1]).tolist() == [0, 4]


def test_epoch_order_passes_over_a_small_set_whole():
    gen = torch.Generator().manual_seed(0)
    one = epoch_order(10, 8, gen)  # fewer draws than images: part of one permutation
    assert len(one) == 8 and len(set(one.tolist())) == 8
    many = epoch_order(10, 25, gen)  # two whole passes, then half of a third
    assert len(many) == 25
    assert all(sorted(many[k:k + 10].tolist()) == list(range(10)) for k in (0, 10))


def test_train_size_is_what_compose_gives():
    real = fabricate_images([7, 3, 1])
    fake = (np.zeros((5, 1, 8, 8), np.uint8), np.array([1, 1, 2, 2, 2]))
    for variant in ("real", "real+oversample", "real+synthetic", "real+synthetic+oversample",
                    "synthetic", "synthetic+oversample", "real+classic"):
        assert train_size(variant, real.labels, fake[1]) == len(compose(variant, real, fake)[1])
    assert train_size("synthetic+oversample", real.labels, fake[1][:0]) == 0


def test_variant_counts_are_the_class_counts_compose_gives():
    """The prior of a variant's long-tail parts comes from these counts, before training."""
    real = fabricate_images([7, 3, 1])
    fake = (np.zeros((5, 1, 8, 8), np.uint8), np.array([1, 1, 2, 2, 2]))
    for variant in ("real+balanced_softmax", "real+oversample+posthoc", "real+synthetic+drw",
                    "synthetic+logit_adjust"):
        counts = variant_counts(variant, real.labels, fake[1], num_classes=3)
        assert counts.tolist() == np.bincount(compose(variant, real, fake)[1],
                                              minlength=3).tolist()
    assert variant_counts("real+synthetic", real.labels, fake[1]).tolist() == [7, 5, 4]
    assert variant_counts("synthetic", real.labels, fake[1], num_classes=3).tolist() == [0, 2, 3]
    assert prior_ratio(np.array([7, 5, 4])) == 7 / 4 and prior_ratio(np.array([0, 2, 3])) == 1.5


def test_synthetic_weight_draws_synthetic_images_that_much_less_often():
    """w = 0.25: a synthetic image is drawn a quarter as often as a real one, and the prior of
    the long-tail parts is the class mass so drawn (real count + w · synthetic count)."""
    real = fabricate_images([7, 3, 1])
    fake = (np.zeros((5, 1, 8, 8), np.uint8), np.array([1, 1, 2, 2, 2]))
    counts = variant_counts("real+synthetic+balanced_softmax", real.labels, fake[1],
                            num_classes=3, synthetic_weight=0.25)
    assert counts.tolist() == [7, 3.5, 1.75]
    _, labels, is_fake = compose("real+synthetic", real, fake)
    weights = draw_weights(is_fake, 0.25)
    assert weights.tolist() == [1.0] * 11 + [0.25] * 5
    assert draw_weights(is_fake, 1.0) is None and draw_weights(is_fake[:11], 0.25) is None
    drawn = weighted_order(16, 200_000, torch.Generator().manual_seed(0), weights=weights)
    share = np.bincount(is_fake[drawn.numpy()].astype(int)) / 200_000
    assert share[1] == pytest.approx(5 * 0.25 / (11 + 5 * 0.25), abs=0.005)
    mass = np.bincount(labels[drawn.numpy()], minlength=3) / 200_000
    assert mass == pytest.approx(counts / counts.sum(), abs=0.005)
    # real images come in whole passes, as without weights: every one once per pass
    real_seq = [i for i in drawn[:1000].tolist() if i < 11]
    for k in range(0, len(real_seq) - 11, 11):
        assert sorted(real_seq[k:k + 11]) == list(range(11)), k


def test_evaluate_variant_draws_by_the_synthetic_weight_and_reports_its_prior(monkeypatch):
    """The weight reaches the classifier's batches and the reported prior."""
    from augment import sampling as E

    calls = []
    original = E.weighted_order

    def recording(n, draws, generator, *, weights):
        calls.append(weights)
        return original(n, draws, generator, weights=weights)

    monkeypatch.setattr(E, "weighted_order", recording)
    splits = {k: fabricate_images([6, 3]) for k in ("train", "val", "test")}
    fake = (np.zeros((3, 1, 8, 8), np.uint8), np.array([1, 1, 1]))
    run = evaluate_variant("real+synthetic", splits, fake, epochs=1, width=4,
                           synthetic_weight=0.25)
    assert calls and calls[0].tolist() == [1.0] * 9 + [0.25] * 3
    expected = variant_counts("real+synthetic", splits["train"].labels, fake[1], num_classes=2,
                              synthetic_weight=0.25)
    assert run["prior_ratio"] == prior_ratio(expected) == 6 / 3.75
    assert evaluate_variant("real+synthetic", splits, fake, epochs=1, width=4)["prior_ratio"] == 1
    assert len(calls) == 1  # weight 1: whole passes, no thinning
    # the variant's own weight is the default; a given one overrides it
    own = evaluate_variant("real+synthetic*0.25", splits, fake, epochs=1, width=4)
    assert calls[-1].tolist() == [1.0] * 9 + [0.25] * 3 and own["prior_ratio"] == 6 / 3.75
    with pytest.raises(DataError, match="synthetic_weight 0.5 with oversample"):
        evaluate_variant("real+synthetic+oversample", splits, fake, epochs=1,
                         synthetic_weight=0.5)
    with pytest.raises(DataError, match="chooses its synthetic weight on val"):
        evaluate_variant("real+synthetic*auto", splits, fake, epochs=1)


@pytest.mark.parametrize("variant, parts", [("real+drw", "drw"), ("real+mixup", "mixup"),
                                            ("real+mixup+posthoc", "mixup, posthoc")])
def test_a_loss_or_mixing_part_without_its_treatment_is_refused(variant, parts):
    """Called directly, a loss or mixing variant without a treatment would silently train
    plainly."""
    splits = {k: fabricate_images([4, 4]) for k in ("train", "val", "test")}
    with pytest.raises(DataError, match=f"{parts} change the loss, the prediction or the batch; "
                                        "pass treatment="):
        evaluate_variant(variant, splits, None, epochs=1)


def test_equal_steps_give_the_small_set_as_many_updates(tmp_path, params):
    """A long tail's `real` trains for the largest variant's steps, not its own set's."""
    params["prepare"]["imbalance_ratio"] = 10.0
    stages.prepare.run(params, out=str(tmp_path / "p"), metrics=str(tmp_path / "p.json"))
    labels = load_prepared(tmp_path / "p")["train"].labels
    steps = common_steps(("real", "real+oversample"), labels, None, batch_size=16)
    assert steps == train_size("real+oversample", labels, None) // 16 > len(labels) // 16
    params["evaluate"].update(variants=["real", "real+oversample"], seeds=1, epochs=1,
                              batch_size=16)
    metrics, runs = {}, {}
    for flag in (True, False):
        params["evaluate"]["equal_steps"] = flag
        stages.evaluate.run(params, data=str(tmp_path / "p"), synthetic=str(tmp_path / "none"),
                            metrics=str(tmp_path / f"{flag}.json"), plots=str(tmp_path / f"{flag}"),
                            report=str(tmp_path / f"{flag}" / "e.md"))
        metrics[flag] = json.loads((tmp_path / f"{flag}.json").read_text())
        runs[flag] = pd.read_csv(tmp_path / f"{flag}" / "runs.csv").set_index("variant")
    assert runs[True]["steps_per_epoch"].tolist() == [steps, steps]
    assert runs[False]["steps_per_epoch"].to_dict() == {"real": len(labels) // 16,
                                                        "real+oversample": steps}
    assert metrics[True]["real"] != metrics[False]["real"]  # trained longer
    assert metrics[True]["real+oversample"] == metrics[False]["real+oversample"]  # unchanged
    assert "same optimizer steps" in (tmp_path / "True" / "e.md").read_text()
    assert "fewer optimizer steps" in (tmp_path / "False" / "e.md").read_text()


def test_classic_augmentation_is_seeded_and_shape_preserving():
    images = fabricate_images([4, 4], size=16, channels=3).images
    a = classic_augment("crop,flip,color", image_size=16, seed=3)(images)
    b = classic_augment("crop,flip,color", image_size=16, seed=3)(images)
    c = classic_augment("crop,flip,color", image_size=16, seed=4)(images)
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, images)
    gray = fabricate_images([5], size=8).images
    assert classic_augment("affine,elastic,noise", image_size=8, seed=0)(gray).shape == gray.shape


@pytest.mark.parametrize("raw, message", [
    ({"variants": ["real+gan"]}, r"'real\+gan' is not a variant"),
    ({"variants": ["oversample"]}, "with real and/or synthetic"),
    ({"variants": ["real+real"]}, "each once"),
    ({"variants": ["real", "real"]}, "twice"),
    ({"classic": " , "}, "evaluate.classic: got an empty policy"),
    ({"runner": "spark"}, "evaluate.runner"),
    ({"variants": ["real+balanced_softmax+drw"]},
     r"evaluate.variants: 'real\+balanced_softmax\+drw' combines the training losses "
     "balanced_softmax and drw"),
    ({"variants": ["real+synthetic+logit_adjust+balanced_softmax"]}, "keep one"),
    ({"variants": ["posthoc"]}, "with real and/or synthetic"),
    ({"variants": ["balanced_softmax+oversample"]}, "with real and/or synthetic"),
    ({"variants": ["real+posthoc+posthoc"]}, "each once"),
    ({"variants": ["real+focal"]}, r"'real\+focal' is not a variant"),
    ({"tau": -0.5}, "evaluate.tau: got -0.5"),
    ({"posthoc_taus": [0.0, -1.0]}, "evaluate.posthoc_taus: got -1.0"),
    ({"posthoc_taus": []}, "evaluate.posthoc_taus: must not be empty"),
    ({"drw_beta": 1.0}, r"evaluate.drw_beta: got 1.0; allowed range is \[0, 1\)"),
    ({"drw_start": 1.0}, "evaluate.drw_start: got 1.0"),
])
def test_bad_evaluate_config_is_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(EvaluateConfig, raw, section="evaluate")


def test_loss_and_prediction_parts_compose_with_the_data_parts():
    ok = ["real+balanced_softmax", "real+synthetic+logit_adjust+classic", "real+drw+posthoc",
          "real+oversample+posthoc", "synthetic+balanced_softmax+posthoc"]
    assert from_dict(EvaluateConfig, {"variants": ok}, section="evaluate").variants == tuple(ok)


@pytest.mark.parametrize("runner, module, package", [("ray", "prefect_ray", "prefect-ray"),
                                                     ("dask", "prefect_dask", "prefect-dask")])
def test_missing_cluster_runner_package_says_what_to_install(monkeypatch, runner, module,
                                                             package):
    """The runner's package made unimportable whether or not it is installed: a None entry in
    sys.modules makes ``importlib.import_module`` (what task_runner calls) raise ImportError."""
    import sys

    from flows.evaluate import task_runner

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as err:
        task_runner(from_dict(EvaluateConfig, {"runner": runner}, section="evaluate"))
    message = str(err.value)
    assert f"evaluate.runner: '{runner}' needs the {package} package" in message
    assert f"pip install {package}" in message and f"pip install 'augment[{runner}]'" in message
    assert "runner: threads" in message


def test_minority_only_fills_just_the_minority(tmp_path, params, checkpoint, judge):
    params["prepare"]["imbalance_ratio"] = 10.0
    stages.prepare.run(params, out=str(tmp_path / "prepared"), metrics=str(tmp_path / "p.json"))
    params["synthesize"]["minority_only"] = True
    summary = stages.synthesize.run(params, data=str(tmp_path / "prepared"), model=str(checkpoint),
                                    judge=str(judge), out=str(tmp_path / "syn"),
                                    metrics=str(tmp_path / "s.json"))
    counts = json.loads((tmp_path / "p.json").read_text())["train_counts"]
    minority = {list(counts)[i] for i in minority_classes(np.array(list(counts.values())))}
    assert {c for c, n in summary["per_class"].items() if n > 0} == minority
    assert all(counts[c] + summary["per_class"][c] == max(counts.values()) for c in minority)


def test_report_flags_a_synthetic_only_variant_without_every_class():
    """A top-up synthetic set (balanced data: a few images, some classes none) makes the
    `synthetic` row meaningless; the report says so instead of showing it as a quality score."""
    from augment.stages.evaluate import synthetic_only_notes

    train = fabricate_images([4, 4, 4])
    summary = {"variants": {"real": {}, "synthetic": {}, "real+synthetic": {}}}
    top_up = (np.zeros((3, 1, 8, 8), np.uint8), np.array([0, 0, 2]))
    (note,) = synthetic_only_notes(summary, train, top_up)
    assert "`synthetic` trains on the 3 synthetic images" in note and "class(es) c1:" in note
    full = (np.zeros((3, 1, 8, 8), np.uint8), np.array([0, 1, 2]))
    assert synthetic_only_notes(summary, train, full) == []
    assert synthetic_only_notes({"variants": {"real+synthetic": {}}}, train, top_up) == []


def test_the_sample_grid_caption_names_its_rows_and_the_blank_ones():
    """The grid has no labels of its own: the report's caption names the rows, top to bottom,
    and a class with no synthetic sample (its right half blank)."""
    from augment.stages.evaluate import _grid_caption

    top_up = (np.zeros((3, 1, 8, 8), np.uint8), np.array([0, 0, 2]))
    caption = _grid_caption(("c0", "c1", "c2"), top_up)
    assert caption.startswith("Samples, one row per class from the top (c0, c1, c2)")
    assert caption.endswith("none was drawn of c1 (blank)")
    assert "none was drawn" not in _grid_caption(("c0", "c1", "c2"), (top_up[0], np.arange(3)))
    report = analysis.markdown_report(
        {"verdict": "v", "seeds": [0], "baseline": None, "steps_per_epoch": {}, "variants": {},
         "tau": {}}, counts={}, minority=[], figures={caption: "samples.png"})
    assert report.endswith(f"*{caption}*\n\n![{caption}](samples.png)\n")  # shown, not alt text
    assert "No non-GAN variant ran" in report and "`None`" not in report  # no baseline: said so


def test_stage_builds_each_variants_treatment_from_its_own_prior(tmp_path, params):
    """Through the stage: the loss part changes the fit (balanced_softmax ≠ real), logit_adjust
    at τ = 1 is balanced_softmax to the last digit, posthoc reports a τ from the grid, and each
    variant's prior ratio is its own training set's (real: the long tail; oversample: 1)."""
    params["prepare"]["imbalance_ratio"] = 10.0
    stages.prepare.run(params, out=str(tmp_path / "p"), metrics=str(tmp_path / "p.json"))
    variants = ["real", "real+oversample+balanced_softmax", "real+balanced_softmax",
                "real+logit_adjust", "real+posthoc", "real+drw"]
    params["evaluate"].update(variants=variants, seeds=1, epochs=2, batch_size=16)
    summary = stages.evaluate.run(params, data=str(tmp_path / "p"), synthetic=str(tmp_path / "none"),
                                  metrics=str(tmp_path / "e.json"), plots=str(tmp_path / "plots"),
                                  report=str(tmp_path / "r" / "e.md"))
    runs = pd.read_csv(tmp_path / "plots" / "runs.csv").set_index("variant")
    counts = np.array(list(json.loads((tmp_path / "p.json").read_text())["train_counts"].values()))
    assert runs.loc["real", "prior_ratio"] == pytest.approx(counts.max() / counts.min())
    assert runs.loc["real+oversample+balanced_softmax", "prior_ratio"] == 1.0
    assert runs.loc["real+posthoc", "tau"] in EvaluateConfig().posthoc_taus
    assert np.isnan(runs.loc["real", "tau"])
    acc = {v: summary["variants"][v]["balanced_accuracy"]["mean"] for v in variants}
    assert acc["real+logit_adjust"] == acc["real+balanced_softmax"] != acc["real"]
    text = (tmp_path / "r" / "e.md").read_text()
    assert "| prior max/min |" in text and "Post-hoc τ chosen on val per seed" in text


def test_an_empty_synthetic_set_is_refused_not_evaluated(tmp_path, prepared, params):
    """Balanced data at target: max draws nothing; "real+synthetic" would be "real" again."""
    from augment.synthesis import write_synthetic

    train = load_prepared(prepared, splits=("train",))["train"]
    empty = torch.zeros((0, *train.images.shape[1:]), dtype=torch.uint8)
    write_synthetic(tmp_path / "syn", empty, torch.zeros(0, dtype=torch.int64), train.classes)
    with pytest.raises(DataError, match=r"holds no synthetic samples.* raise synthesize.multiple"):
        stages.evaluate.run(params, data=str(prepared), synthetic=str(tmp_path / "syn"),
                            metrics=str(tmp_path / "m.json"), plots=str(tmp_path / "plots"),
                            report=str(tmp_path / "r.md"))
    assert not (tmp_path / "m.json").exists()


def test_a_report_of_chance_level_classifiers_says_so(tmp_path, params):
    """Noise images: every classifier at chance, so the verdict and the recommendation mean
    nothing, and the report opens its notes with that; images with a class-dependent
    brightness: no such note."""
    from augment.data import save_prepared

    params["evaluate"].update(variants=["real", "real+oversample"], epochs=20, seeds=2)
    for name in ("noise", "signal"):
        splits = {}
        for i, split in enumerate(("train", "val", "test")):
            data = fabricate_images([40] * 4, seed=i)
            if name == "signal":  # class c: pixels in [60c, 60c + 15]
                data.images[:] = data.images // 16 + 60 * data.labels[:, None, None, None]
            splits[split] = data
        save_prepared(tmp_path / name, splits)
        stages.evaluate.run(params, data=str(tmp_path / name), synthetic=str(tmp_path / "none"),
                            metrics=str(tmp_path / f"{name}.json"),
                            plots=str(tmp_path / f"{name}_plots"), report=str(tmp_path / f"{name}.md"))
        report = (tmp_path / f"{name}.md").read_text()
        assert ("**Every variant is near chance**" in report) == (name == "noise"), name
