"""Ways of using synthetic samples: head re-fits on frozen features (decoupled, the Gaussian
tail calibration, the feature cGAN), synthetic images' own BatchNorm, and settings (classic
policy, synthetic_weight) chosen on val."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch

from augment import features, stages
from augment.analysis import uses_gan
from augment.classic import candidates, classic_augment
from augment.config import EvaluateConfig
from augment.errors import ConfigError
from augment.classifier import (SplitBatchNorm2d, fit_classifier, predict_logits,
                                seeded_classifier, split_forward)
from augment.evaluate import evaluate_variant, pick_on_val, settings_grid
from augment.features import gan_fill, gaussian_fill, refit_head, shortfall
from augment.longtail import treatment
from conftest import fabricate_images


def _clusters(counts, dim=8, seed=0):
    """Features of well-separated classes: class c centred at 3·e_c (+1 so all are > 0)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    centres = 3 * np.eye(len(counts), dim) + 1
    x = centres[labels] + 0.3 * rng.standard_normal((len(labels), dim))
    return torch.as_tensor(x, dtype=torch.float32), labels, centres


def test_gaussian_fill_borrows_the_tail_statistics_from_its_nearest_richer_classes():
    counts = np.array([60, 40, 3])
    x, y, _ = _clusters(counts)
    made, labels = gaussian_fill(x, y, counts, seed=0, neighbours=2)
    assert np.bincount(labels, minlength=3).tolist() == shortfall(counts).tolist() == [0, 20, 57]
    means = [x[y == c].double().mean(0) for c in range(3)]
    tail = made[labels == 2].double()
    # class 2 borrows from 0 and 1 (both richer): mean (μ2 + μ0 + μ1) / 3, their spread
    assert torch.allclose(tail.mean(0), (means[2] + means[0] + means[1]) / 3, atol=0.15)
    assert tail.std(0).mean() > 0.2 and (made >= 0).all()
    again, _ = gaussian_fill(x, y, counts, seed=0, neighbours=2)
    assert torch.equal(made, again)


def test_feature_gan_learns_each_class_and_fills_the_shortfall():
    """Samples of a class land nearer its own centre than any other: the class condition is
    learnt (an untrained or unconditional generator fails this)."""
    counts = np.array([80, 80, 80, 10])
    x, y, centres = _clusters(counts)
    made, labels = gan_fill(x, y, counts, seed=0, steps=200)
    assert np.bincount(labels, minlength=4).tolist() == [0, 0, 0, 70]
    # counts that ask for every class but the first (the GAN trains on the same features)
    made, labels = gan_fill(x, y, np.array([80, 40, 40, 10]), seed=0, steps=200)
    assert np.bincount(labels, minlength=4).tolist() == [0, 40, 40, 70]
    dist = torch.cdist(made.double(), torch.as_tensor(centres))
    assert (dist.argmin(1).numpy() == labels).mean() > 0.9
    again, _ = gan_fill(x, y, np.array([80, 40, 40, 10]), seed=0, steps=200)
    assert torch.equal(made, again)


def test_refit_head_trains_the_last_layer_on_real_and_generated_features():
    """Only the head moves; the generated features are in its set (a fill that returns none
    gives another head)."""
    splits = {k: fabricate_images([20, 4], seed=i) for i, k in enumerate(("train", "val"))}
    model = seeded_classifier(channels=1, num_classes=2, width=4, seed=0)
    last = f"net.{len(model.net) - 1}."
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(last)}
    head = model.net[-1].weight.detach().clone()
    calls = []

    def fill(features, labels, counts, seed):
        calls.append(counts.tolist())
        return features[labels == 1][:1].repeat(16, 1) * 2, np.ones(16, int)

    kw = dict(num_classes=2, lr=0.01, batch_size=8, seed=0, device=torch.device("cpu"))
    train, val = splits["train"], splits["val"]
    model, info = refit_head(model, train.images, train.labels, val.images, val.labels,
                             fill=fill, **kw)
    assert calls == [[20, 4]] and info["generated_features"] == 16 and info["head_epoch"] >= 1
    assert not torch.equal(model.net[-1].weight, head)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in body.items())
    other = seeded_classifier(channels=1, num_classes=2, width=4, seed=0)
    other, _ = refit_head(other, train.images, train.labels, val.images, val.labels,
                          fill=lambda f, y, c, s: (f[:0], y[:0]), **kw)
    assert not torch.equal(other.net[-1].weight, model.net[-1].weight)


def _learnable(counts, seed):
    """Fabricated images whose brightness grows with the class, noisy enough to confuse."""
    data = fabricate_images(counts, seed=seed)
    data.images[:] = data.images // 2 + 30 * data.labels[:, None, None, None]
    return data


@pytest.mark.parametrize("part", ["decoupled", "feature_gaussian", "feature_gan"])
def test_a_head_part_changes_the_classifier_it_follows(part, monkeypatch):
    monkeypatch.setitem(features.FILLS, "feature_gan", partial(gan_fill, steps=50))
    splits = {k: _learnable([48, 6], seed=i) for i, k in enumerate(("train", "val", "test"))}
    splits["test"] = _learnable([60, 60], seed=5)
    counts = np.array([48, 6])
    cfg = EvaluateConfig()
    kw = dict(epochs=10, width=8, seed=0, batch_size=8, lr=0.01)
    plain = evaluate_variant("real+balanced_softmax", splits, None,
                             treatment=treatment("real+balanced_softmax", counts, cfg), **kw)
    variant = f"real+balanced_softmax+{part}"
    run = evaluate_variant(variant, splits, None, treatment=treatment(variant, counts, cfg), **kw)
    assert run["generated_features"] == (0 if part == "decoupled" else 42)
    assert run["head_epoch"] >= 1 and run["y_pred"] != plain["y_pred"]
    assert uses_gan(variant) == (part == "feature_gan")


def test_split_forward_sends_synthetic_images_through_their_own_batchnorm():
    model = seeded_classifier(channels=1, num_classes=2, width=4, seed=0, split_bn=True).train()
    norms = [m for m in model.modules() if isinstance(m, SplitBatchNorm2d)]
    x = torch.rand(6, 1, 8, 8)
    flags = torch.tensor([False, False, False, True, True, True])
    x[flags] += 5  # synthetic images far brighter: the statistics tell them apart
    logits = split_forward(model, x, flags)
    first = norms[0]
    # the main statistics are those of the real rows alone, aux those of the synthetic rows
    for rows, stats in ((~flags, first.running_mean), (flags, first.aux.running_mean)):
        alone = seeded_classifier(channels=1, num_classes=2, width=4, seed=0, split_bn=True)
        alone.train()(x[rows])
        assert torch.allclose(stats, alone.net[1].running_mean)
    assert not torch.allclose(first.running_mean, first.aux.running_mean)
    assert not any(m.use_aux for m in norms)
    model.eval()
    assert torch.allclose(model(x[~flags]), split_forward(model, x[~flags], flags[~flags]))
    assert logits.shape == (6, 2)


def test_split_bn_changes_the_fit():
    """Same seed and batches; only the synthetic images' normalisation differs."""
    splits = {k: _learnable([10, 10], seed=i) for i, k in enumerate(("train", "val", "test"))}
    fake = (np.full((20, 1, 8, 8), 200, np.uint8), np.repeat([0, 1], 10))
    images = np.concatenate([splits["train"].images, fake[0]])
    labels = np.concatenate([splits["train"].labels, fake[1]])
    flags = np.arange(len(labels)) >= 20
    logits = {}
    for split in (False, True):
        model, _ = fit_classifier(images, labels, splits["val"], num_classes=2, epochs=1,
                                  width=4, batch_size=8, is_synthetic=flags, split_bn=split)
        logits[split] = predict_logits(model, splits["test"].images, device=torch.device("cpu"))
    assert not torch.allclose(logits[False], logits[True])


@pytest.mark.parametrize("raw, message", [
    ({"variants": ["real+split_bn"]}, "split_bn .* needs synthetic"),
    ({"variants": ["real+synthetic+split_bn+mixup"]}, "needs synthetic and no mixup"),
    ({"variants": ["real+decoupled+posthoc"]}, "keep one of them"),
    ({"variants": ["real+decoupled+feature_gan"]}, "head re-fits"),
    ({"classic": "autumn"}, "evaluate.classic: got 'autumn'")])
def test_bad_usage_settings_are_named(raw, message):
    from augment.config import from_dict

    with pytest.raises(ConfigError, match=message):
        from_dict(EvaluateConfig, raw, section="evaluate")


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
    stages.synthesize(params, data=str(prepared), model=str(checkpoint), judge=str(judge),
                      out=str(tmp_path / "s"), metrics=str(tmp_path / "s.json"))
    params["evaluate"].update(variants=["real", "real+synthetic+classic"], seeds=2, epochs=1,
                              classic="auto", synthetic_weight="auto")
    summary = stages.evaluate(params, data=str(prepared), synthetic=str(tmp_path / "s"),
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
                            "real+balanced_softmax+feature_gan": {"balanced_accuracy":
                                                                  {"mean": 0.81}},
                            "real+synthetic": {"balanced_accuracy": {"mean": 0.7}}}}
    assert best_overall(summary) == ("Best variant overall: real+balanced_softmax+feature_gan "
                                     "(0.8100), a GAN variant.")
    summary["variants"]["real+balanced_softmax"]["balanced_accuracy"]["mean"] = 0.9
    assert best_overall(summary).endswith("(0.9000), not a GAN variant.")
    assert uses_gan("real+synthetic+posthoc@tuned") and not uses_gan("real+decoupled@x")
