"""Settings chosen on val (the classic policy, the synthetic weight) and the report's verdict. The
other ways of using synthetic samples measured for issue 39 (head re-fits on frozen features,
a feature-space cGAN, synthetic images' own BatchNorm) lost to balanced softmax and were removed
(benchmarks/RESULTS.md)."""

from __future__ import annotations

import json

import pytest

from augment import stages
from augment.analysis import uses_gan
from augment.classic import candidates, classic_augment
from augment.config import EvaluateConfig
from augment.errors import ConfigError
from augment.evaluate import pick_on_val, settings_grid


def test_bad_synthetic_weights_are_named_with_the_fix():
    from augment.config import from_dict, variant_parts, variant_weight

    for variant, message in (("real+synthetic*often", "synthetic weight must be a number in "
                                                      "\\(0, 1\\] or auto.*got 'often'"),
                             ("real+synthetic*1.5", "got '1.5'"), ("real+synthetic*0", "got '0'"),
                             ("real+classic*0.5", "only the synthetic part takes a weight"),
                             ("real+synthetic*0.5+oversample", "drop oversample or the weight")):
        with pytest.raises(ConfigError, match=message):
            from_dict(EvaluateConfig, {"variants": [variant]}, section="evaluate")
    # the old global key says where the weight went
    with pytest.raises(ConfigError, match="evaluate.synthetic_weight: no longer a key.*"
                                          "synthetic\\*0.5"):
        from_dict(EvaluateConfig, {"synthetic_weight": 0.5}, section="evaluate")
    assert variant_weight("real+synthetic*0.25+posthoc") == 0.25
    assert variant_weight("real+synthetic*auto") == "auto"
    assert variant_weight("real+synthetic") == variant_weight("real") == 1.0
    assert variant_parts("real+synthetic*0.1+posthoc") == ("real", "synthetic", "posthoc")
    EvaluateConfig(variants=("real+oversample", "real+synthetic*0.5", "real+synthetic*auto"))


def test_an_unknown_classic_op_is_named_before_any_fit():
    """The op names are checked as the grid starts (config.py does not import the policies, so
    editing them reruns evaluate alone)."""
    from augment.config import from_dict
    from augment.evaluate import run_grid

    cfg = from_dict(EvaluateConfig, {"classic": "affine,autumn"}, section="evaluate")
    with pytest.raises(ConfigError, match="evaluate.classic: got 'affine,autumn'"):
        run_grid(cfg, {}, None, seed=0, run=lambda fn, jobs: pytest.fail("a fit ran"))


def test_settings_grid_and_pick_on_val():
    grid = settings_grid("real+synthetic*auto+classic", classic="auto", channels=1)
    assert len(grid) == 4 * 5 and grid[0] == {"synthetic_weight": 1.0,
                                              "classic": "affine,elastic,noise"}
    assert {g["synthetic_weight"] for g in grid} == {1.0, 0.5, 0.25, 0.1}
    assert candidates(3) == ("crop,flip,color", "none", "crop", "flip", "color")
    assert settings_grid("real+classic", classic=None, channels=3) == [
        {"synthetic_weight": 1.0, "classic": "crop,flip,color"}]
    # a weight given in the variant is used as it is; a bare synthetic part draws at 1
    assert settings_grid("real+synthetic*0.1+classic", classic=None, channels=1) == [
        {"synthetic_weight": 0.1, "classic": "affine,elastic,noise"}]
    assert [g["synthetic_weight"] for g in settings_grid(
        "real+synthetic+oversample+classic", classic="auto", channels=1)] == [1.0] * 5
    assert classic_augment("none", image_size=8, seed=0) is None
    trials = [("a", {"w": 1}), ("a", {"w": 2}), ("a", {"w": 3}), ("b", {"w": 1})]
    results = [{"val_balanced_accuracy": s} for s in (0.5, 0.7, 0.7, 0.1)]
    chosen, first = pick_on_val(trials, results)
    assert chosen == {"a": {"w": 2}, "b": {"w": 1}} and first["a"] is results[1]


def test_stage_chooses_the_classic_policy_and_weight_on_val_and_records_them(
        tmp_path, params, prepared, checkpoint, judge):
    stages.synthesize.run(params, data=str(prepared), model=str(checkpoint), judge=str(judge),
                          out=str(tmp_path / "s"), metrics=str(tmp_path / "s.json"))
    params["evaluate"].update(variants=["real", "real+synthetic*auto+classic"], seeds=2,
                              epochs=1, classic="auto")
    summary = stages.evaluate.run(params, data=str(prepared), synthetic=str(tmp_path / "s"),
                                  metrics=str(tmp_path / "e.json"), plots=str(tmp_path / "p"),
                                  report=str(tmp_path / "r" / "e.md"))
    chosen = summary["chosen_on_val"]["real+synthetic*auto+classic"]
    assert chosen["tried"] == 20 and chosen["classic"] in candidates(1)
    assert chosen["synthetic_weight"] in (1.0, 0.5, 0.25, 0.1)
    assert list(summary["chosen_on_val"]) == ["real+synthetic*auto+classic"]
    metrics = json.loads((tmp_path / "e.json").read_text())
    assert metrics["chosen:real+synthetic*auto+classic"] == {
        "classic": chosen["classic"], "synthetic_weight": chosen["synthetic_weight"]}
    report = (tmp_path / "r" / "e.md").read_text()
    assert f"chose classic `{chosen['classic']}` and synthetic weight " in report
    assert (tmp_path / "p" / "confusion" / "real_synthetic-wauto_classic.csv").exists()
    assert summary["seeds"] == [0, 1]


def test_verdict_recommends_the_variant_best_on_val_not_on_test():
    """The recommendation is the highest mean val score (ties: the earlier variant), named with
    its test score and whether it uses the GAN; the highest test score is named apart when it
    is another variant. A recommendation made on test scores fails here."""
    import pandas as pd
    from augment.analysis import summarize

    rows = [("real", 0.70, 0.70), ("real+balanced_softmax", 0.80, 0.83),
            ("real+synthetic+posthoc", 0.81, 0.82)]  # best on test, second on val
    table = pd.DataFrame([{"variant": v, "seed": s, "n_train": 10, "steps_per_epoch": 1,
                           "prior_ratio": 1.0, "seconds": 1.0, "balanced_accuracy": t + s / 100,
                           "val_balanced_accuracy": val + s / 100, "minority_recall": t,
                           "accuracy": t, "macro_f1": t}
                          for v, t, val in rows for s in (0, 1)])
    summary = summarize(table)
    assert summary["recommended"] == "real+balanced_softmax"
    assert summary["verdict"].endswith(
        "Recommended, chosen on val: real+balanced_softmax (val 0.8350, test 0.8050), not a GAN "
        "variant. Highest on test: real+synthetic+posthoc (0.8150), a GAN variant.")
    table.loc[table.variant == "real+synthetic+posthoc", "val_balanced_accuracy"] += 0.01
    summary = summarize(table)  # now a tie on val: the earlier variant
    assert summary["recommended"] == "real+balanced_softmax"
    table.loc[table.variant == "real+synthetic+posthoc", "val_balanced_accuracy"] += 0.001
    summary = summarize(table)
    assert summary["verdict"].endswith(
        "Recommended, chosen on val: real+synthetic+posthoc (val 0.8360, test 0.8150), a GAN "
        "variant. On test it changed balanced accuracy by +0.0100 (the same on all 2 seeds, no "
        "spread: no CI or p-value) against real+balanced_softmax, which needs no GAN.")


def test_uses_gan_reads_the_parts_not_the_tag():
    assert uses_gan("real+synthetic+posthoc@tuned") and not uses_gan("real+classic@synthetic")
