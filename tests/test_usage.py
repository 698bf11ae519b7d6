"""Settings chosen on val (the classic policy, synthetic_weight) and the report's verdict. The
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


def test_bad_choice_settings_are_named():
    from augment.config import from_dict

    with pytest.raises(ConfigError, match="evaluate.synthetic_weight: got 'often'"):
        from_dict(EvaluateConfig, {"synthetic_weight": "often"}, section="evaluate")


def test_an_unknown_classic_op_is_named_before_any_fit():
    """The op names are checked as the grid starts (config.py does not import the policies, so
    editing them reruns evaluate alone)."""
    from augment.config import from_dict
    from augment.evaluate import run_grid

    cfg = from_dict(EvaluateConfig, {"classic": "affine,autumn"}, section="evaluate")
    with pytest.raises(ConfigError, match="evaluate.classic: got 'affine,autumn'"):
        run_grid(cfg, {}, None, seed=0, run=lambda fn, jobs: pytest.fail("a fit ran"))


def test_settings_grid_and_pick_on_val():
    grid = settings_grid("real+synthetic+classic", synthetic_weight="auto", classic="auto",
                         channels=1)
    assert len(grid) == 4 * 5 and grid[0] == {"synthetic_weight": 1.0,
                                              "classic": "affine,elastic,noise"}
    assert candidates(3) == ("crop,flip,color", "none", "crop", "flip", "color")
    assert settings_grid("real+classic", synthetic_weight="auto", classic=None, channels=3) == [
        {"synthetic_weight": 1.0, "classic": "crop,flip,color"}]
    assert len(settings_grid("real+synthetic+oversample", synthetic_weight="auto",
                             classic=None, channels=1)) == 1
    assert classic_augment("none", image_size=8, seed=0) is None
    trials = [("a", {"w": 1}), ("a", {"w": 2}), ("a", {"w": 3}), ("b", {"w": 1})]
    results = [{"val_balanced_accuracy": s} for s in (0.5, 0.7, 0.7, 0.1)]
    chosen, first = pick_on_val(trials, results)
    assert chosen == {"a": {"w": 2}, "b": {"w": 1}} and first["a"] is results[1]


def test_stage_chooses_the_classic_policy_and_weight_on_val_and_records_them(
        tmp_path, params, prepared, checkpoint, judge):
    stages.synthesize.run(params, data=str(prepared), model=str(checkpoint), judge=str(judge),
                          out=str(tmp_path / "s"), metrics=str(tmp_path / "s.json"))
    params["evaluate"].update(variants=["real", "real+synthetic+classic"], seeds=2, epochs=1,
                              classic="auto", synthetic_weight="auto")
    summary = stages.evaluate.run(params, data=str(prepared), synthetic=str(tmp_path / "s"),
                                  metrics=str(tmp_path / "e.json"), plots=str(tmp_path / "p"),
                                  report=str(tmp_path / "r" / "e.md"))
    chosen = summary["chosen_on_val"]["real+synthetic+classic"]
    assert chosen["tried"] == 20 and chosen["classic"] in candidates(1)
    assert chosen["synthetic_weight"] in (1.0, 0.5, 0.25, 0.1)
    assert list(summary["chosen_on_val"]) == ["real+synthetic+classic"]
    metrics = json.loads((tmp_path / "e.json").read_text())
    assert metrics["chosen:real+synthetic+classic"]["classic"] == chosen["classic"]
    assert "chose classic" in (tmp_path / "r" / "e.md").read_text()
    assert summary["seeds"] == [0, 1]


def test_verdict_names_the_best_variant_and_whether_it_uses_a_gan():
    from augment.analysis import best_overall

    summary = {"variants": {"real+balanced_softmax": {"balanced_accuracy": {"mean": 0.8}},
                            "real+synthetic+posthoc": {"balanced_accuracy": {"mean": 0.81}},
                            "real": {"balanced_accuracy": {"mean": 0.7}}}}
    assert best_overall(summary) == ("Best variant overall: real+synthetic+posthoc (0.8100), "
                                     "a GAN variant.")
    summary["variants"]["real+balanced_softmax"]["balanced_accuracy"]["mean"] = 0.9
    assert best_overall(summary).endswith("(0.9000), not a GAN variant.")
    assert uses_gan("real+synthetic+posthoc@tuned") and not uses_gan("real+classic@synthetic")
